// Must NOT compile: parallel_map over items that cannot be shipped (raw pointers).
#include <vector>

#include "multiproc/parallel.hpp"

int deref(const int* p) { return *p; }

int main() {
    int a = 1, b = 2;
    std::vector<const int*> items{&a, &b};
    auto r = mp::parallel_map(deref, items);
    return r[0];
}
