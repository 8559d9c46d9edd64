// Must NOT compile: a task whose lambda captures a std::string cannot travel to a worker.
#include <string>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

int main() {
    std::string prefix = "item ";
    auto label = [prefix](int x) { return prefix + std::to_string(x); };
    auto task = mp::detail::package_task(label, 4);
    return static_cast<int>(task.bytes.size());
}
