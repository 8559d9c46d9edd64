// The CPU-bound task of the "~1 ms tasks" rows (bench/rows/pool.cpp, bench/mpi_tiny.cpp).
#pragma once

#include <cstdint>

namespace mp_bench {

/// ~1 ms of CPU for the calibrated n: a chain of multiply-adds the compiler can neither drop
/// nor shorten (the empty asm makes every step's value observable).
inline std::uint64_t spin(std::uint64_t n) {
    std::uint64_t x = n;
    for (std::uint64_t i = 0; i < n; ++i) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        asm volatile("" : "+r"(x));
    }
    return x;
}

}  // namespace mp_bench
