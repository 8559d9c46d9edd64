// Must NOT compile: a task whose lambda captures a pointer (the address means nothing in the
// worker; before, it was shipped as bytes).
#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

int main() {
    int base = 4;
    int* p = &base;
    auto add = [p](int x) { return *p + x; };
    auto task = mp::detail::package_task(add, 1);
    return static_cast<int>(task.bytes.size());
}
