// Must NOT compile: a forkserver preload with an argument the codec cannot encode (a pointer):
// the call must ship to the server, a fresh process.
#include "multiproc/context.hpp"

void build(const int* p) { static_cast<void>(*p); }

int main() {
    int x = 3;
    mp::set_forkserver_preload(build, &x);
}
