// What the Connection tests (tests/connection_test.cpp, tests/connection_cross_process_test.cpp)
// share: writing raw bytes on a connection's descriptor to forge frames, and a typed sample value.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "multiproc/connection.hpp"

namespace mp::test {

/// The bytes as a string.
inline std::string string_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// Writes raw bytes on a connection's descriptor, bypassing the framing (to forge frames).
inline void write_raw(const mp::Connection& c, const void* p, std::size_t n) {
    const char* s = static_cast<const char*>(p);
    while (n) {
        ssize_t r = ::send(c.fileno(), s, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw std::system_error(errno, std::system_category(), "send");
        s += r;
        n -= static_cast<std::size_t>(r);
    }
}

/// Writes v big-endian, as a frame header's length.
inline void write_be32(const mp::Connection& c, std::uint32_t v) {
    unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    write_raw(c, b, 4);
}

/// A typed value with the codec's common shapes (a string, a vector, a map).
struct Sample {
    int id = 0;
    std::string name;
    std::vector<double> values;
    std::map<std::string, int> tags;
    /// Encodes and decodes the members.
    template <class Ar>
    void serialize(Ar& ar) {
        ar(id, name, values, tags);
    }
    bool operator==(const Sample&) const = default;
};

}  // namespace mp::test
