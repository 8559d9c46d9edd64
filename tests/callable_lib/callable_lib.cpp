#include "callable_lib.hpp"

#include <numeric>
#include <stdexcept>

namespace callable_lib {

int triple(int x) { return 3 * x; }

std::string greet(std::string name) { return "hello, " + name; }

int throw_out_of_range(int x) {
    throw std::out_of_range("index " + std::to_string(x) + " out of range");
}

mp::detail::ShippedCall package_scaled_sum(const std::vector<int>& v, int k) {
    auto scaled = [k](const std::vector<int>& xs) {
        return k * std::accumulate(xs.begin(), xs.end(), 0);
    };
    return mp::detail::package_task(scaled, v);
}

std::uintptr_t some_code_address() { return mp::detail::code_address(&triple); }

}  // namespace callable_lib
