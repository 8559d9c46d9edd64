// Fuzzes the decoding and resolution of function identities and shipped calls (callable.hpp)
// against this harness's own modules. Nothing decoded is ever called: the harness resolves what
// a receiver resolves before the call (the thunk, then the target identity that follows it) and
// stops. Whether an accepted address is a real entry point is for tests/callable_forged_test.cpp;
// here the finds are crashes, sanitizer reports, hangs (a path naming a FIFO) and over-allocations.
// mp::DecodeError and mp::ProcessError are the right answers to bad bytes.
//
// Inputs come in two forms. Raw bytes are decoded as they are. An input that starts with the tag
// "MPF1" is relative to a real call (or identity) made by this very binary at start-up:
//
//   "MPF1" | u8 k | u8 cut | mask       decoded: template k XOR mask (the template's own bytes
//                                        past the mask, the mask's past the template), less
//                                        its last `cut` bytes
//
// so the committed seeds (an empty mask: the real call itself) stay valid encodings whatever
// build id and offsets the next build gives the harness. tests/fuzz/corpus/identity/ holds them:
// one "MPF1" k 0 per template, and "MPF1" k 8 (the last offset cut off).
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task.hpp"

namespace {

int square(int x) { return x * x; }
void action() {}

std::vector<std::vector<std::byte>> make_templates() {
    using namespace mp::detail;
    std::vector<std::vector<std::byte>> t;
    t.push_back(package_task(square, 3).bytes);                       // function pointer target
    t.push_back(package_task([](int x) { return x + 1; }, 2).bytes);  // captureless lambda
    int k = 5;  // not const: a const int would not need capturing
    t.push_back(package_task([k](int x) { return k * x; }, 2).bytes);  // closure bytes
    t.push_back(package_pool_task(square, 4).bytes);                   // a Pool's thunk
    t.push_back(code_identity(code_address(&action)));                 // a bare identity
    // In a shared library (so with its path), stripped on Debian (so read from .dynsym).
    t.push_back(code_identity(reinterpret_cast<std::uintptr_t>(&::getpid)));
    return t;
}

const std::vector<std::vector<std::byte>>& templates() {
    static const auto t = make_templates();
    return t;
}

// Resolves what a receiver resolves before calling anything; never calls.
void resolve_package(std::span<const std::byte> bytes) {
    try {
        mp::Decoder d(bytes, {});
        static_cast<void>(mp::detail::open_package(d));
        static_cast<void>(mp::detail::resolve_code_address(d, mp::detail::EntryKind::function));
    } catch (const mp::ProcessError&) {
    }
}

void resolve_identity(std::span<const std::byte> bytes) {
    for (auto kind : {mp::detail::EntryKind::function, mp::detail::EntryKind::thunk}) {
        try {
            mp::Decoder d(bytes, {});
            static_cast<void>(mp::detail::resolve_code_address(d, kind));
            d.finish();
        } catch (const mp::ProcessError&) {
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto* in = reinterpret_cast<const std::byte*>(data);
    if (size >= 6 && std::memcmp(data, "MPF1", 4) == 0) {
        const auto& all = templates();
        std::vector<std::byte> bytes = all[data[4] % all.size()];
        const std::size_t cut = data[5];
        const std::span<const std::byte> mask(in + 6, size - 6);
        const std::size_t n = bytes.size();
        for (std::size_t i = 0; i < std::min(n, mask.size()); ++i) bytes[i] ^= mask[i];
        if (mask.size() > n)
            bytes.insert(bytes.end(), mask.begin() + static_cast<std::ptrdiff_t>(n), mask.end());
        bytes.resize(bytes.size() - std::min(cut, bytes.size()));
        resolve_package(bytes);
        resolve_identity(bytes);
    } else {
        resolve_package({in, size});
        resolve_identity({in, size});
    }
    return 0;
}
