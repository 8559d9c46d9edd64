// The engine's frames (engine_protocol.hpp): task batches as a worker reads them and result
// batches as the supervisor reads them. Input: [kind: even tasks, odd results][descriptors that
// came with the frame][payload]. Bad bytes must give mp::DecodeError.
#include <cstddef>
#include <cstdint>

#include "engine_protocol.hpp"
#include "multiproc/errors.hpp"
#include "seeds.hpp"

namespace wire = mp::detail::wire;

namespace {

// A frame's input: kind, descriptor count, then count and records as the engine writes them.
mp::fuzz::Bytes frame(bool results, std::uint8_t nfds, std::uint32_t count, std::size_t body) {
    mp::fuzz::Bytes b{static_cast<std::byte>(results ? 1 : 0), static_cast<std::byte>(nfds)};
    mp::fuzz::append(b, count);
    for (std::uint32_t k = 0; k < count; ++k) {
        mp::fuzz::append(b, std::uint64_t{k + 1});
        if (results) mp::fuzz::append(b, std::uint64_t{1000 * k});
        mp::fuzz::append(b, std::uint32_t{k < nfds ? 1u : 0u});
        mp::fuzz::append(b, std::uint64_t{body});
        b.insert(b.end(), body, std::byte{static_cast<unsigned char>(k)});
    }
    return b;
}

std::vector<mp::fuzz::Bytes> seeds() {
    return {frame(false, 0, 1, 8), frame(false, 2, 3, 20), frame(true, 0, 1, 1),
            frame(true, 1, 4, 33), frame(false, 0, 0, 0),  frame(true, 0, 0, 0)};
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const wire::Kind kind = (data[0] & 1) ? wire::Kind::results : wire::Kind::tasks;
    const auto payload = std::span(reinterpret_cast<const std::byte*>(data) + 2, size - 2);
    try {
        wire::FrameRecords records(kind, payload, data[1]);
        std::size_t seen = 0;
        for (wire::FrameRecord r; records.next(r);) {
            if (r.first_fd + r.nfds > data[1] || r.bytes.size() > payload.size()) __builtin_trap();
            seen += r.bytes.size();
        }
        if (seen > payload.size()) __builtin_trap();
    } catch (const mp::DecodeError&) {
    }
    return 0;
}
