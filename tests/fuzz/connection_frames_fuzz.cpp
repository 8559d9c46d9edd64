// Connection framing (connection.cpp, Python's wire format): the bytes a peer wrote, read back
// frame after frame through a real socket pair. Lengths in both of Python's forms (4-byte, and
// -1 then 8 bytes above 2 GiB) come from the fuzzer; the buffer must grow only with bytes that
// arrived, and bad bytes must give mp::ProcessError (EOFError at a premature end).
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "seeds.hpp"
#include "sys/io.hpp"

namespace {

mp::fuzz::Bytes be32(std::int32_t v) {
    const auto u = static_cast<std::uint32_t>(v);
    return {std::byte(u >> 24), std::byte(u >> 16), std::byte(u >> 8), std::byte(u)};
}

mp::fuzz::Bytes frames(std::initializer_list<std::size_t> sizes, bool long_form = false) {
    mp::fuzz::Bytes b;
    for (std::size_t n : sizes) {
        mp::fuzz::Bytes h = be32(long_form ? -1 : static_cast<std::int32_t>(n));
        if (long_form)
            for (int i = 7; i >= 0; --i)
                h.push_back(std::byte(static_cast<std::uint64_t>(n) >> (8 * i)));
        b.insert(b.end(), h.begin(), h.end());
        b.insert(b.end(), n, std::byte{0x5a});
    }
    return b;
}

std::vector<mp::fuzz::Bytes> seeds() {
    return {frames({0}),       frames({5}),           frames({1, 2, 3}), frames({300}),
            frames({7}, true), frames({0, 64}, true), be32(-2)};
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 65536) return 0;  // one write into the socket's buffer, no reader needed
    auto pair = mp::sys::make_socketpair();
    mp::sys::write_all(pair.write.get(), data, size);
    pair.write.reset();  // end of file after the input
    mp::Connection c(std::move(pair.read));
    for (int i = 0; i < 256; ++i) {
        try {
            if (i % 2) (void)c.recv_bytes(4096);
            else (void)c.recv_bytes();
        } catch (const mp::ProcessError&) {
            break;
        }
    }
    return 0;
}
