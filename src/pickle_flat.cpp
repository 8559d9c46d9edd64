// mp::pickle's fast path for flat pickles: a list of numbers, or a dict of str keys to numbers,
// decoded straight into the caller's C++ container without building py::objects.
//
// It accepts only the exact opcode shapes Python's pickler and ours write for such values:
//
//   PROTO [FRAME] EMPTY_LIST|EMPTY_DICT [memo] { MARK item... APPENDS|SETITEMS | item APPEND|
//   SETITEM } STOP        where item is a number (BININT*, LONG1 up to 8 bytes, BINFLOAT,
//                         NEWTRUE/NEWFALSE), and a dict key a str opcode [memo].
//
// Anything else (a memo reference, a nested container, a bigint, a second value ...) makes it
// give up with nothing consumed from the caller's point of view, and the general decoder runs:
// the fast path decides nothing the general one would decide differently, and reports no error.
#include <cstring>

#include "multiproc/pickle.hpp"
#include "pickle_opcodes.hpp"

namespace mp::pickle::detail {

namespace {

class Flat {
public:
    explicit Flat(std::span<const std::byte> d) : p_(d.data()), end_(d.data() + d.size()) {}

    // The container's opening, after PROTO and FRAME: EMPTY_LIST or EMPTY_DICT, else 0.
    std::uint8_t open() {
        if (!byte_is(op::PROTO) || p_ == end_ || std::to_integer<int>(*p_++) > highest_protocol)
            return 0;
        if (byte_is(op::FRAME) && len(8) > static_cast<std::uint64_t>(end_ - p_)) return 0;
        if (p_ == end_) return 0;
        const std::uint8_t o = op_at();
        if (o != op::EMPTY_LIST && o != op::EMPTY_DICT) return 0;
        ++p_;
        skip_memo();
        return o;
    }

    // One number; false (and nothing consumed) when the next opcode is not one.
    template <class N>
    bool number(N& out) {
        if (p_ == end_) return false;
        const std::byte* at = p_++;
        switch (static_cast<std::uint8_t>(*at)) {
            case op::BININT1: return le(1, out, false, at);
            case op::BININT2: return le(2, out, false, at);
            case op::BININT: return le(4, out, true, at);
            case op::NEWTRUE:  // a bool is an int (int(True)), not a float, as convert says
            case op::NEWFALSE:
                if constexpr (std::is_same_v<N, double>) return back(at);
                out = static_cast<std::uint8_t>(*at) == op::NEWTRUE;
                return true;
            case op::LONG1: {
                if (p_ == end_) return back(at);
                const auto n = std::to_integer<unsigned>(*p_++);
                if (n > 8) return back(at);
                return le(static_cast<int>(n), out, true, at);
            }
            case op::BINFLOAT: {
                if constexpr (std::is_same_v<N, double>) {
                    if (end_ - p_ < 8) return back(at);
                    std::uint64_t u = 0;
                    for (int i = 0; i < 8; ++i)
                        u = (u << 8) | std::to_integer<std::uint64_t>(p_[i]);
                    std::memcpy(&out, &u, 8);
                    p_ += 8;
                    return true;
                }
                return back(at);
            }
            default: return back(at);
        }
    }

    // One str (its UTF-8 bytes into out), and the memo opcode after it.
    bool text(std::string& out) {
        if (p_ == end_) return false;
        const std::byte* at = p_++;
        std::uint64_t n = 0;
        switch (static_cast<std::uint8_t>(*at)) {
            case op::SHORT_BINUNICODE: n = len(1); break;
            case op::BINUNICODE: n = len(4); break;
            case op::BINUNICODE8: n = len(8); break;
            default: return back(at);
        }
        if (n == ~std::uint64_t{0} || n > static_cast<std::uint64_t>(end_ - p_)) return back(at);
        out.assign(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        skip_memo();
        return true;
    }

    [[nodiscard]] bool at(std::uint8_t o) const noexcept { return p_ < end_ && op_at() == o; }
    void next() noexcept { ++p_; }
    // STOP, and nothing after it.
    [[nodiscard]] bool at_stop() const noexcept { return end_ - p_ == 1 && op_at() == op::STOP; }

private:
    [[nodiscard]] std::uint8_t op_at() const noexcept { return static_cast<std::uint8_t>(*p_); }
    bool byte_is(std::uint8_t o) {
        if (!at(o)) return false;
        ++p_;
        return true;
    }
    // MEMOIZE, BINPUT i or LONG_BINPUT i: the memo is never read on this path (a GET ends it).
    void skip_memo() {
        if (at(op::MEMOIZE)) ++p_;
        else if (at(op::BINPUT) && end_ - p_ >= 2) p_ += 2;
        else if (at(op::LONG_BINPUT) && end_ - p_ >= 5) p_ += 5;
    }
    std::uint64_t len(int n) {
        if (end_ - p_ < n) return ~std::uint64_t{0};
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(p_[i]) << (8 * i);
        p_ += n;
        return v;
    }
    template <class N>
    bool le(int n, N& out, bool is_signed, const std::byte* at) {
        if (end_ - p_ < n) return back(at);
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(p_[i]) << (8 * i);
        if (is_signed && n > 0 && n < 8 && (std::to_integer<unsigned>(p_[n - 1]) & 0x80))
            v |= ~std::uint64_t{0} << (8 * n);
        p_ += n;
        out = static_cast<N>(static_cast<std::int64_t>(v));
        return true;
    }
    bool back(const std::byte* at) {
        p_ = at;
        return false;
    }

    const std::byte* p_;
    const std::byte* end_;
};

template <class N>
bool list_of(std::span<const std::byte> data, std::vector<N>& out) {
    Flat f(data);
    if (f.open() != op::EMPTY_LIST) return false;
    while (!f.at_stop()) {
        if (f.at(op::MARK)) {
            f.next();
            N n;
            while (f.number(n)) out.push_back(n);
            if (!f.at(op::APPENDS)) return false;
        } else {
            N n;
            if (!f.number(n) || !f.at(op::APPEND)) return false;
            out.push_back(n);
        }
        f.next();
    }
    return true;
}

template <class N>
bool dict_of(std::span<const std::byte> data, std::vector<std::pair<std::string, N>>& out) {
    Flat f(data);
    if (f.open() != op::EMPTY_DICT) return false;
    std::string key;
    N n;
    while (!f.at_stop()) {
        if (f.at(op::MARK)) {
            f.next();
            while (f.text(key)) {
                if (!f.number(n)) return false;
                out.emplace_back(std::move(key), n);
            }
            if (!f.at(op::SETITEMS)) return false;
        } else {
            if (!f.text(key) || !f.number(n) || !f.at(op::SETITEM)) return false;
            out.emplace_back(std::move(key), n);
        }
        f.next();
    }
    return true;
}

}  // namespace

bool load_flat(std::span<const std::byte> data, std::vector<std::int64_t>& out) {
    return list_of(data, out);
}
bool load_flat(std::span<const std::byte> data, std::vector<double>& out) {
    return list_of(data, out);
}
bool load_flat(std::span<const std::byte> data,
               std::vector<std::pair<std::string, std::int64_t>>& out) {
    return dict_of(data, out);
}
bool load_flat(std::span<const std::byte> data, std::vector<std::pair<std::string, double>>& out) {
    return dict_of(data, out);
}

}  // namespace mp::pickle::detail
