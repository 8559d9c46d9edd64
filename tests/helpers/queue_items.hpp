// What the queue tests (tests/queues_test.cpp, tests/queues_faults_test.cpp) share: their fixture
// across processes, and items of known content and of sizes that cross the queue's boundaries.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "helpers/start_method_test.hpp"

namespace mp::test {

/// A queue test across processes, run once per start method.
class QueuesP : public StartMethodTest {};

/// n bytes whose content depends on n and seed (a reader can check every byte).
inline std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
    return s;
}

/// Item sizes on both sides of the slot size, the chunk size and the page size.
inline std::vector<std::size_t> mixed_sizes() {
    return {0,      1,      7,      63,     64,      4096,
            16'376, 16'384, 16'385, 65'000, 100'000, std::size_t{1} << 20,
            3,      250'000};
}

}  // namespace mp::test
