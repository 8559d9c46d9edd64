// Control: the same shapes as the failing sources, but shippable; must compile.
#include <string>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

int square(int x) { return x * x; }

int main() {
    int k = 3;
    auto scaled = [k](int x) { return k * x; };
    auto t1 = mp::detail::package_task(scaled, 4);
    auto t2 = mp::detail::package_task(square, 5);
    auto t3 = mp::detail::package_task([](std::string s) { return s + "!"; }, std::string("hi"));
    return static_cast<int>(t1.bytes.size() + t2.bytes.size() + t3.bytes.size()) == 0;
}
