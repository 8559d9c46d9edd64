// Must NOT compile: a Pool task whose lambda captures a std::string cannot travel to a worker.
#include <string>
#include <vector>

#include "multiproc/pool.hpp"

int main() {
    mp::Pool pool(1);
    std::string prefix = "item ";
    auto label = [prefix](int x) { return prefix + std::to_string(x); };
    auto r = pool.map(label, std::vector<int>{1, 2});
    return static_cast<int>(r.size());
}
