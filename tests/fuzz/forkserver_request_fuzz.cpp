// The forkserver's request parsers (forkserver.hpp, forkserver_preload.hpp): one message from
// the program, with some descriptors. Input: [count of descriptors that came with it][the message]. Bad bytes must
// give mp::DecodeError, and nothing may be allocated for a length that did not arrive.
#include <cstddef>
#include <cstdint>

#include "forkserver.hpp"
#include "forkserver_preload.hpp"
#include "multiproc/errors.hpp"
#include "seeds.hpp"

namespace {

mp::fuzz::Bytes request(std::uint8_t nfds, std::uint32_t kind, const mp::fuzz::Bytes& record) {
    mp::fuzz::Bytes b{static_cast<std::byte>(nfds)};
    mp::fuzz::append(b, mp::detail::ForkRequestHead{kind, 0, record.size()});
    if (kind == mp::detail::kInlineRequest) b.insert(b.end(), record.begin(), record.end());
    return b;
}

std::vector<mp::fuzz::Bytes> seeds() {
    mp::CurrentProcess::Info who;
    who.name = "Process-2";
    who.identity = {2};
    who.parent_name = "MainProcess";
    const auto none = mp::detail::encode_bootstrap(who, mp::fuzz::Bytes(16, std::byte{1}), 0);
    const auto two = mp::detail::encode_bootstrap(who, mp::fuzz::Bytes(64, std::byte{2}), 2);
    return {request(1, mp::detail::kInlineRequest, none),
            request(3, mp::detail::kInlineRequest, two),
            request(2, mp::detail::kMemfdRequest, none), request(4, mp::detail::kMemfdRequest, two),
            request(1, mp::detail::kPreloadRequest, none)};
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto msg = std::span(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
    try {
        const auto r = mp::detail::parse_fork_request(msg, data[0]);
        // The memfd's contents are read by the server with read_bootstrap_file; here the record
        // is what the message holds (nothing, for that kind).
        (void)mp::detail::decode_fork_record(r.record, r);
    } catch (const mp::DecodeError&) {
    }
    try {
        (void)mp::detail::parse_preload_request(msg, data[0]);
    } catch (const mp::DecodeError&) {
    }
    return 0;
}
