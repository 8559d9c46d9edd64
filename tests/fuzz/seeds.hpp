// The seed corpora are written by the harnesses themselves, from the library's own encoders (so
// that they stay valid when a format changes): run a harness with MULTIPROC_FUZZ_SEEDS=<dir>
// and it writes its seeds there, one file each, and exits. The committed corpora in
// tests/fuzz/corpus/<name>/ were made that way.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace mp::fuzz {

using Bytes = std::vector<std::byte>;

/// When MULTIPROC_FUZZ_SEEDS names a directory: writes make()'s seeds into it and exits.
template <class Make>
void write_seeds_if_asked(Make make) {
    const char* dir = std::getenv("MULTIPROC_FUZZ_SEEDS");
    if (!dir) return;
    const std::vector<Bytes> seeds = make();
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        std::ofstream f(std::string(dir) + "/seed-" + std::to_string(i), std::ios::binary);
        f.write(reinterpret_cast<const char*>(seeds[i].data()),
                static_cast<std::streamsize>(seeds[i].size()));
    }
    std::printf("%zu seeds written to %s\n", seeds.size(), dir);
    std::exit(0);
}

/// Appends the bytes of a trivially copyable value.
template <class T>
void append(Bytes& b, const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + sizeof v);
}

}  // namespace mp::fuzz

/// Defines the harness's LLVMFuzzerInitialize: write_seeds_if_asked(make).
#define MULTIPROC_FUZZ_SEEDS(make) \
    extern "C" int LLVMFuzzerInitialize(int*, char***) { \
        mp::fuzz::write_seeds_if_asked(make); \
        return 0; \
    }
