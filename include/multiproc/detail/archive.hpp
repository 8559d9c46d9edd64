// The codec's two archives (docs/reduction.md): mp::Encoder writes values as bytes plus the
// descriptors that travel beside them, mp::Decoder reads them back, checking every count
// against the bytes present and charging what it builds to an allocation budget. The rules
// for each type are in detail/codec_rules.hpp; <multiproc/reduction.hpp> is the public entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <span>
#include <vector>

#include "multiproc/detail/fd.hpp"

namespace mp {

/// Writes values as bytes; the output archive of the cereal-style serialize convention.
class Encoder {
public:
    static constexpr bool is_loading = false;
    static constexpr bool is_saving = true;

    /// Appends each value's encoding.
    template <class... Ts>
    Encoder& operator()(const Ts&... values);

    /// Appends raw bytes.
    void write_bytes(const void* p, std::size_t n) {
        // Small writes grow the vector in place; large ones go out of line (src/reduction.cpp),
        // which also spares every program the instantiation of vector::insert.
        if (n > 256) return append_large(p, n);
        const std::size_t old = bytes_.size();
        bytes_.resize(old + n);
        if (n) std::memcpy(bytes_.data() + old, p, n);
    }
    /// Appends a length or count.
    void write_size(std::uint64_t n) { write_bytes(&n, sizeof n); }
    /// Records a descriptor to travel beside the bytes (not owned: it must stay open until the
    /// message is sent) and writes its index.
    void add_fd(int fd);
    /// The bytes written so far.
    [[nodiscard]] std::vector<std::byte>& bytes() noexcept { return bytes_; }
    [[nodiscard]] const std::vector<std::byte>& bytes() const noexcept { return bytes_; }
    /// The descriptors recorded so far, in index order.
    [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }

private:
    void append_large(const void* p, std::size_t n);
    std::vector<std::byte> bytes_;
    std::vector<int> fds_;
};

/// Reads values from bytes; the input archive of the cereal-style serialize convention.
class Decoder {
public:
    static constexpr bool is_loading = true;
    static constexpr bool is_saving = false;

    /// Decodes `bytes`; `fds` are the descriptors that arrived with them (taken by take_fd).
    explicit Decoder(std::span<const std::byte> bytes, std::span<detail::UniqueFd> fds = {})
        : bytes_(bytes), fds_(fds), budget_(budget_for(bytes.size())) {}

    /// The memory, in bytes, that decoding a message of `size` bytes may fill with objects beyond
    /// the bytes themselves (strings and vectors of raw values are bounded by their bytes): a
    /// count from a peer is input, not a reason to allocate what it announces.
    static constexpr std::size_t budget_for(std::size_t size) noexcept {
        constexpr std::size_t per_byte = 64, slack = std::size_t{1} << 20;
        return size > (std::numeric_limits<std::size_t>::max() - slack) / per_byte
                   ? std::numeric_limits<std::size_t>::max()
                   : size * per_byte + slack;
    }

    /// Decodes into each value, in order.
    template <class... Ts>
    Decoder& operator()(Ts&... values);

    /// Bytes not yet consumed.
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
    /// Consumes n bytes and returns them (DecodeError when fewer remain).
    std::span<const std::byte> take(std::size_t n) {
        if (n > remaining()) truncated(n);
        const std::span<const std::byte> s(bytes_.data() + pos_, n);
        pos_ += n;
        return s;
    }
    /// Copies n bytes out.
    void read_bytes(void* p, std::size_t n) {
        auto s = take(n);
        if (n) std::memcpy(p, s.data(), n);
    }
    /// Reads a length or count.
    std::uint64_t read_size() {
        std::uint64_t n;
        read_bytes(&n, sizeof n);
        return n;
    }
    /// Reads a count of elements that each take at least `min_bytes` bytes of input, rejecting
    /// counts the remaining input cannot hold; when `object_bytes` is not 0, also charges the
    /// memory the elements will occupy (`object_bytes` each, at least 1 for elements that may
    /// encode to nothing) to this message's allocation budget (DecodeError when exhausted).
    std::size_t read_count(std::size_t min_bytes, std::size_t object_bytes = 0) {
        const std::uint64_t n = read_size();
        if (min_bytes && n > remaining() / min_bytes) count_too_large(n);
        const std::size_t cost = min_bytes || object_bytes ? object_bytes : 1;
        if (cost) {
            if (n > budget_ / cost) over_budget(n, cost);
            budget_ -= static_cast<std::size_t>(n) * cost;
        }
        return static_cast<std::size_t>(n);
    }
    /// Takes the descriptor whose index comes next in the bytes (DecodeError if absent).
    detail::UniqueFd take_fd() {
        std::uint64_t i = read_size();
        if (i >= fds_.size() || !fds_[i]) fd_missing(i);
        return std::move(fds_[i]);
    }
    /// From now on, a value that names code (a shipped callable's function identity) is a
    /// DecodeError: set for bytes from a peer that is not trusted to make this process load a
    /// library or call an address (a Listener/Client connection, DESIGN.md 11).
    void refuse_code() noexcept { code_refused_ = true; }
    /// True after refuse_code().
    [[nodiscard]] bool code_refused() const noexcept { return code_refused_; }
    /// Throws DecodeError unless every byte was consumed.
    void finish() const {
        if (remaining()) trailing_bytes();
    }

private:
    // The error paths, out of line (src/reduction.cpp): the inline paths stay a few
    // instructions (a fork child runs them with little of the program's code paged in).
    [[noreturn, gnu::cold]] void truncated(std::size_t n) const;
    [[noreturn, gnu::cold]] void count_too_large(std::uint64_t n) const;
    [[noreturn, gnu::cold]] void over_budget(std::uint64_t n, std::size_t each) const;
    [[noreturn, gnu::cold]] void fd_missing(std::uint64_t i) const;
    [[noreturn, gnu::cold]] void trailing_bytes() const;
    std::span<const std::byte> bytes_;
    std::span<detail::UniqueFd> fds_;
    std::size_t pos_ = 0;
    std::size_t budget_;
    bool code_refused_ = false;
};

namespace detail {

void encode_exception(Encoder& e, const std::exception_ptr& ex);
std::exception_ptr decode_exception(Decoder& d);

/// The bytes of the smallest encoded exception (checked against its layout in src/reduction.cpp).
inline constexpr std::size_t exception_min_bytes = 37;

}  // namespace detail

}  // namespace mp
