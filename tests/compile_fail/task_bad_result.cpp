// Must NOT compile: the result (a raw pointer) cannot travel back from the worker.
#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

const char* name(int) { return "static storage"; }

int main() {
    auto task = mp::detail::package_task(name, 4);
    return static_cast<int>(task.bytes.size());
}
