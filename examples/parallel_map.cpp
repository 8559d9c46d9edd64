// joblib's Parallel in C++: a CPU-bound parallel_map with a progress bar, timed against one
// process; parallel_for writing into a shared Array.
// Usage: parallel_map [fork|spawn|forkserver]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ranges>
#include <vector>

#include "multiproc/bootstrap.hpp"
#include "multiproc/context.hpp"
#include "multiproc/parallel.hpp"
#include "multiproc/sharedctypes.hpp"

// Is n prime, by trial division: about a millisecond for a prime near 10^12.
bool is_prime(long long n) {
    if (n < 2) return false;
    for (long long d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

struct Rows {
    mp::Array<double> out;
    int begin = 0, end = 0;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(out, begin, end);
    }
};
void fill_rows(const Rows& r) {
    for (int i = r.begin; i < r.end; ++i) r.out[static_cast<std::size_t>(i)] = i * 0.5;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    if (argc > 1) mp::set_start_method(argv[1]);
    using Clock = std::chrono::steady_clock;

    // Odd numbers near 10^12: composites are quick, the primes among them take about 1 ms.
    std::vector<long long> candidates;
    for (long long n = 1'000'000'000'001LL; candidates.size() < 3000; n += 2)
        candidates.push_back(n);

    auto t0 = Clock::now();
    auto serial = mp::parallel_map(is_prime, candidates, {.jobs = 1});
    auto t1 = Clock::now();
    auto parallel = mp::parallel_map(is_prime, candidates, {.jobs = -1, .progress = true});
    auto t2 = Clock::now();

    const double s = std::chrono::duration<double>(t1 - t0).count();
    const double p = std::chrono::duration<double>(t2 - t1).count();
    const auto primes = std::count(parallel.begin(), parallel.end(), true);
    std::printf("%ld primes among %zu candidates; 1 process %.3f s, %d processes %.3f s: %.2fx\n",
                static_cast<long>(primes), candidates.size(), s, mp::Parallel({.jobs = -1}).jobs(),
                p, s / p);

    mp::Array<double> out(1000);
    std::vector<Rows> slices;
    for (int i = 0; i < 1000; i += 250) slices.push_back({out, i, i + 250});
    mp::parallel_for(slices, fill_rows);
    std::printf("out[999] = %.1f\n", out[999]);
    return serial == parallel && out[999] == 499.5 ? 0 : 1;
}
