// Must NOT compile: apply_async with an argument the codec cannot encode (a raw pointer).
#include "multiproc/pool.hpp"

int deref(const int* p) { return *p; }

int main() {
    mp::Pool pool(1);
    int x = 3;
    return pool.apply_async(deref, &x).get();
}
