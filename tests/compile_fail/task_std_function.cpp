// Must NOT compile: a std::function hides its target's type, so it cannot travel to a worker.
#include <functional>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

int main() {
    std::function<int(int)> f = [](int x) { return x + 1; };
    auto task = mp::detail::package_task(f, 4);
    return static_cast<int>(task.bytes.size());
}
