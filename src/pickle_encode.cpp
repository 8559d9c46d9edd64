// mp::pickle's writer: the opcodes Python's own pickler chooses for plain data at each protocol,
// so that what Python reads back has the same types and what it writes looks the same:
//
//   +------+---+-----+-------------------+-----------------------------+------+
//   | 0x80 | n |FRAME| u64 LE frame size | opcodes ...                 | STOP |   protocol >= 4
//   +------+---+-----+-------------------+-----------------------------+------+
//
// Protocol 2 and 3 have no FRAME. One frame spans the whole pickle (Python cuts frames at 64 KiB,
// but any frame size is valid and its readers take it whole).
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "multiproc/pickle.hpp"
#include "pickle_globals.hpp"
#include "pickle_opcodes.hpp"

namespace mp::pickle::detail {

namespace {
constexpr std::size_t kFrameHeader = 9;  // FRAME + u64 size

void put_le(std::byte* p, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
}  // namespace

Writer::Writer(int protocol, buffer_sink* sink) : protocol_(protocol), sink_(sink) {
    if (protocol < 2 || protocol > highest_protocol)
        throw UsageError("mp::pickle: protocol " + std::to_string(protocol) +
                         " is not supported (2 to 5)");
    reserve_more(256);
    put(op::PROTO);
    put(static_cast<std::uint8_t>(protocol));
    if (protocol >= 4) {
        put(op::FRAME);
        grow(8);
    }
}

std::vector<std::byte> Writer::finish() {
    put(op::STOP);
    out_.resize(static_cast<std::size_t>(cur_ - out_.data()));
    if (protocol_ >= 4) put_le(out_.data() + 3, out_.size() - 2 - kFrameHeader, 8);
    return std::move(out_);
}

// Doubles the room (at least n more bytes): growth is amortized, and the zeroing that resize
// does happens once per byte of capacity, not per write.
void Writer::reserve_more(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(cur_ - out_.data());
    out_.resize(std::max(out_.size() * 2, used + n + 256));
    cur_ = out_.data() + used;
    end_ = out_.data() + out_.size();
}

void Writer::long_int(std::int64_t v) { big(py::bigint::from_int(v)); }

void Writer::unsigned_integer(std::uint64_t v) {
    if (v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        integer(static_cast<std::int64_t>(v));
    else big(py::bigint::from_unsigned(v));
}

void Writer::big(const py::bigint& b) {
    if (b.le.size() < 256) {
        std::byte* p = grow(2 + b.le.size());
        p[0] = std::byte{op::LONG1};
        p[1] = static_cast<std::byte>(b.le.size());
        if (!b.le.empty()) std::memcpy(p + 2, b.le.data(), b.le.size());
    } else {
        counted(0, op::LONG4, 0, b.le.size(), b.le.data());
    }
}

// op1/op4/op8: the opcodes with a 1-, 4- and 8-byte length (0: none at this protocol).
void Writer::counted(std::uint8_t op1, std::uint8_t op4, std::uint8_t op8, std::size_t n,
                     const void* data) {
    std::byte* p;
    if (op1 && n < 256) {
        p = grow(2 + n);
        p[0] = std::byte{op1};
        p[1] = static_cast<std::byte>(n);
        p += 2;
    } else if (n <= std::numeric_limits<std::uint32_t>::max()) {
        p = grow(5 + n);
        p[0] = std::byte{op4};
        put_le(p + 1, n, 4);
        p += 5;
    } else {
        if (!op8) throw UsageError("mp::pickle: a value over 4 GiB needs protocol 4 or later");
        p = grow(9 + n);
        p[0] = std::byte{op8};
        put_le(p + 1, n, 8);
        p += 9;
    }
    if (n) std::memcpy(p, data, n);
}

void Writer::str(std::string_view s) {
    const bool v4 = protocol_ >= 4;
    counted(v4 ? op::SHORT_BINUNICODE : 0, op::BINUNICODE, v4 ? op::BINUNICODE8 : 0, s.size(),
            s.data());
}

void Writer::bytes(std::span<const std::byte> b) {
    if (protocol_ >= 3) {
        counted(op::SHORT_BINBYTES, op::BINBYTES, protocol_ >= 4 ? op::BINBYTES8 : 0, b.size(),
                b.data());
        return;
    }
    // Protocol 2 has no bytes opcode: Python writes bytes() or _codecs.encode(latin-1 text,
    // 'latin1'), the text being each byte as one code point, in UTF-8.
    if (b.empty()) {
        global("__builtin__", "bytes");
        put(op::EMPTY_TUPLE);
        put(op::REDUCE);
        return;
    }
    global("_codecs", "encode");
    std::string text;
    text.reserve(b.size() * 2);
    for (std::byte c : b) {
        const auto u = std::to_integer<unsigned char>(c);
        if (u < 0x80) {
            text += static_cast<char>(u);
        } else {
            text += static_cast<char>(0xc0 | (u >> 6));
            text += static_cast<char>(0x80 | (u & 0x3f));
        }
    }
    str(text);
    str("latin1");
    put(op::TUPLE2);
    put(op::REDUCE);
}

void Writer::bytearray(std::span<const std::byte> b) {
    if (protocol_ >= 5) {
        std::byte* p = grow(9 + b.size());
        p[0] = std::byte{op::BYTEARRAY8};
        put_le(p + 1, b.size(), 8);
        if (!b.empty()) std::memcpy(p + 9, b.data(), b.size());
        return;
    }
    global(protocol_ == 2 ? "__builtin__" : "builtins", "bytearray");
    bytes(b);
    put(op::TUPLE1);
    put(op::REDUCE);
}

void Writer::buffer(const py::pickle_buffer& b) {
    if (protocol_ < 5) throw UsageError("mp::pickle: a pickle_buffer needs protocol 5");
    if (!sink_) {
        if (b.readonly) bytes(b.data);
        else bytearray(b.data);
        return;
    }
    put(op::NEXT_BUFFER);
    if (b.readonly) put(op::READONLY_BUFFER);
    sink_->push_back(b.data);
}

void Writer::global(std::string_view module, std::string_view name) {
    if (protocol_ >= 4) {
        str(module);
        str(name);
        put(op::STACK_GLOBAL);
        return;
    }
    std::byte* p = grow(3 + module.size() + name.size());
    p[0] = std::byte{op::GLOBAL};
    std::memcpy(p + 1, module.data(), module.size());
    p[1 + module.size()] = std::byte{'\n'};
    std::memcpy(p + 2 + module.size(), name.data(), name.size());
    p[2 + module.size() + name.size()] = std::byte{'\n'};
}

// Protocol 4 has set opcodes; before it Python writes set(list) and frozenset(list) as calls.
void Writer::begin_set(bool frozen, std::size_t n) {
    if (protocol_ >= 4) {
        if (!frozen) put(op::EMPTY_SET);
        if (frozen || n) mark();
        return;
    }
    global(protocol_ == 2 ? "__builtin__" : "builtins", frozen ? "frozenset" : "set");
    empty_list();
    if (n) mark();
}

void Writer::end_set(bool frozen, std::size_t n) {
    if (protocol_ >= 4) {
        if (frozen) put(op::FROZENSET);
        else if (n) put(op::ADDITEMS);
        return;
    }
    if (n) appends();
    put(op::TUPLE1);
    put(op::REDUCE);
}

}  // namespace mp::pickle::detail
