// The codec (Python's multiprocessing.reduction, without pickle): values <-> bytes, plus the
// file descriptors that handles carry beside the bytes. docs/reduction.md is the user's page.
//
//   arithmetic (not bool), enum, complex ... sizeof(T) raw bytes (no per-element work)
//   plain struct / closure, no padding ..... sizeof(T) raw bytes, if it holds only the above
//   plain struct / closure with padding .... its value bytes only; its bools checked on arrival
//     or bools                              (a byte map found at compile time: see ByteRole)
//   bool ................................... u8, checked 0/1
//   long double ............................ its value bytes (10 on x87), not its padding
//   empty types ............................ nothing
//   std::string, vector<raw T> ............. u64 length, then the raw block
//   vector, list, deque, set, map, ... ..... u64 count, then each element
//   pair, tuple, std::array ................ each element in order
//   optional ............................... u8 engaged flag (checked), then the value
//   variant ................................ u32 index (checked), then the alternative
//   std::exception_ptr ..................... the exception transport (same standard type, or
//                                            mp::RemoteError with type name, what, stack)
//   user types ............................. cereal's convention: `template <class Ar> void
//                                            serialize(Ar& ar) { ar(a, b); }` (member or free
//                                            function), or `save(Ar&) const` + `load(Ar&)`
//   handles (Connection, Lock, ...) ........ save/load that call Encoder::add_fd / take_fd
//
// A trivially copyable type holding a pointer, a reference or a union (optional, variant) that
// has no serialize() does not cross: the codec cannot check it, and says so at compile time.
// Enums take any value of their underlying type.
//
// Integers travel in host byte order: both ends are processes of one program on hosts of one
// architecture. Decoding is safe against hostile input: every tag is checked; every count is
// checked against the bytes actually present (with a compile-time lower bound of each element's
// encoded size) before anything is allocated; and the objects a message builds are charged to
// a budget of 64 bytes per byte received plus 1 MiB (Decoder::budget_for), so no decode
// allocates more than a constant times what it received. Bad bytes are an mp::DecodeError,
// never undefined behaviour. A type that cannot cross is a compile-time error that says why.
#pragma once

#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "multiproc/detail/archive.hpp"
#include "multiproc/detail/codec_rules.hpp"
#include "multiproc/detail/codec_traits.hpp"
#include "multiproc/detail/fd.hpp"

namespace mp {

/// True when T can cross processes through the codec (checked recursively through containers).
template <class T>
inline constexpr bool is_shippable_v = detail::encodable<std::remove_cvref_t<T>>();

/// A type that can cross processes through the codec.
template <class T>
concept Shippable = is_shippable_v<T>;

template <class... Ts>
Encoder& Encoder::operator()(const Ts&... values) {
    (detail::encode_value(*this, values), ...);
    return *this;
}

template <class... Ts>
Decoder& Decoder::operator()(Ts&... values) {
    (detail::decode_into(*this, values), ...);
    return *this;
}

/// Encodes one value to bytes (descriptors of handles are not carried: use an Encoder).
template <class T>
std::vector<std::byte> dumps(const T& value) {
    Encoder e;
    e(value);
    return std::move(e.bytes());
}

/// Decodes one value from bytes; every byte must belong to it (else mp::DecodeError).
template <class T>
T loads(std::span<const std::byte> bytes, std::span<detail::UniqueFd> fds = {}) {
    Decoder d(bytes, fds);
    return detail::decode_rest<T>(d);
}

}  // namespace mp
