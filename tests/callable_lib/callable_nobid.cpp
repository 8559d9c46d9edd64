// Linked with -Wl,--build-id=none: a module without a GNU build id.
int callable_nobid_negate(int x) { return -x; }
