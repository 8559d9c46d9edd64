// Must NOT compile: a raw pointer argument means nothing in the worker's address space.
#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

int deref(const int* p) { return *p; }

int main() {
    int x = 4;
    auto task = mp::detail::package_task(deref, &x);
    return static_cast<int>(task.bytes.size());
}
