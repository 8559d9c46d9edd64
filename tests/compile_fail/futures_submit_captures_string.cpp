// Must NOT compile: an executor task whose lambda captures a std::string cannot travel.
#include <string>

#include "multiproc/futures.hpp"

int main() {
    std::string prefix = "item ";
    mp::ProcessPoolExecutor ex(1);
    auto f = ex.submit([prefix](int x) { return prefix + std::to_string(x); }, 4);
    return static_cast<int>(f.result().size());
}
