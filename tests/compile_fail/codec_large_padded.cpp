// Must NOT compile: a struct larger than the codec maps byte by byte, with padding to leave out.
#include <array>
#include <cstdint>

#include "multiproc/reduction.hpp"

struct Frame {
    std::int32_t id;
    std::array<double, 1000> samples;  // 4 bytes of padding before, more than 1 KiB in all
};

int main() { return static_cast<int>(mp::dumps(Frame{}).size()); }
