// Control: plain structs and closures the codec sends (raw, or by their value bytes); must compile.
#include <cstdint>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

struct Dense {
    std::int32_t a, b;
    float f;
};
struct Padded {
    char c;
    double d;
    bool on;
};
struct Empty {};

int main() {
    int k = 3;
    double offset = 0.5;
    bool flag = true;
    auto f = [k, offset, flag](int x) { return flag ? k * x + offset : offset; };
    auto task = mp::detail::package_task(f, 4);
    auto a = mp::dumps(Dense{1, 2, 3.0f});
    auto b = mp::dumps(Padded{'c', 1.0, true});
    auto c = mp::dumps(Empty{});
    return static_cast<int>(task.bytes.size() + a.size() + b.size() + c.size()) == 0;
}
