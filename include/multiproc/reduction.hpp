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

#include <algorithm>
#include <array>
#include <bit>
#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "multiproc/detail/fd.hpp"
#include "multiproc/errors.hpp"

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
        const auto* b = static_cast<const std::byte*>(p);
        bytes_.insert(bytes_.end(), b, b + n);
    }
    /// Appends a length or count.
    void write_size(std::uint64_t n) { write_bytes(&n, sizeof n); }
    /// Records a descriptor to travel beside the bytes (not owned: it must stay open until the
    /// message is sent) and writes its index.
    void add_fd(int fd) {
        write_size(fds_.size());
        fds_.push_back(fd);
    }
    /// The bytes written so far.
    [[nodiscard]] std::vector<std::byte>& bytes() noexcept { return bytes_; }
    [[nodiscard]] const std::vector<std::byte>& bytes() const noexcept { return bytes_; }
    /// The descriptors recorded so far, in index order.
    [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }

private:
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
        auto s = bytes_.subspan(pos_, n);
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
        const std::size_t cost = min_bytes ? object_bytes : std::max<std::size_t>(object_bytes, 1);
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

template <class>
inline constexpr bool always_false = false;

template <class T> struct is_std_string : std::false_type {};
template <class C, class Tr, class A>
struct is_std_string<std::basic_string<C, Tr, A>> : std::bool_constant<std::is_trivially_copyable_v<C>> {};

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_variant : std::false_type {};
template <class... T> struct is_variant<std::variant<T...>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T, class A> struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T> struct is_view : std::false_type {};
template <class C, class Tr> struct is_view<std::basic_string_view<C, Tr>> : std::true_type {};
template <class T, std::size_t N> struct is_view<std::span<T, N>> : std::true_type {};

template <class T> struct is_std_array : std::false_type {};
template <class T, std::size_t N> struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T> struct is_complex : std::false_type {};
template <class T> struct is_complex<std::complex<T>> : std::true_type {};

template <class T>
concept tuple_like = requires { std::tuple_size<T>::value; };

template <class T>
concept has_member_serialize = requires(T& t, Encoder& e, Decoder& d) {
    t.serialize(e);
    t.serialize(d);
};
template <class T>
concept has_free_serialize = requires(T& t, Encoder& e, Decoder& d) {
    serialize(e, t);
    serialize(d, t);
};
template <class T>
concept has_save_load = requires(const T& ct, T& t, Encoder& e, Decoder& d) {
    ct.save(e);
    t.load(d);
};
template <class T>
concept user_codec = has_member_serialize<T> || has_free_serialize<T> || has_save_load<T>;

template <class T>
concept associative = requires { typename T::key_type; } && requires(T& c) {
    c.size();
    c.begin();
    c.end();
    c.clear();
};
template <class T>
concept sequence = !is_std_string<T>::value && requires(T& c, typename T::value_type v) {
    c.size();
    c.begin();
    c.end();
    c.push_back(std::move(v));
};

enum class Kind {
    unsupported,
    pointer,
    view,
    opaque,        // trivially copyable, but holds a pointer, reference or union we cannot see into
    too_large,     // trivially copyable with padding or bools, too large to map byte by byte
    user,
    boolean,
    long_double,
    raw,           // bit-safe: every byte is value and any value is valid: one memcpy
    masked,        // trivially copyable with padding and/or bool bytes: value bytes only, checked
    string,
    contiguous_raw,
    sequence,
    tuple,
    optional,
    variant,
    associative,
    exception,
};

// --- the byte map of a trivially copyable type ------------------------------------------------
//
// Which bytes of T are padding, which hold a bool (valid: 0 or 1) and which take any value is
// found at compile time by constant-evaluating std::bit_cast round trips: reading back a byte
// that is padding is not a constant expression, and a bool byte does not keep the value 2.
// Both g++ 12 and clang 14 evaluate these the same way; they see inside lambdas' closures and
// private members, which no C++20 reflection can. A pointer, reference or union anywhere in T
// makes bit_cast non-constant: such a T is `opaque` and is not shipped as bytes.

enum class ByteRole : std::uint8_t { padding, value, flag };

template <class T>
using image_t = std::array<unsigned char, sizeof(T)>;

template <class T>
constexpr bool round_trips() {
    static_cast<void>(std::bit_cast<image_t<T>>(std::bit_cast<T>(image_t<T>{})));
    return true;
}
template <class T>
concept castable = requires { typename std::bool_constant<round_trips<T>()>; };

// Bytes [Lo, Hi) set to `fill` come back unchanged through a T.
template <class T, std::size_t Lo, std::size_t Hi, unsigned char Fill>
constexpr bool keeps() {
    image_t<T> in{};
    for (std::size_t i = Lo; i < Hi; ++i) in[i] = Fill;
    const image_t<T> out = std::bit_cast<image_t<T>>(std::bit_cast<T>(in));
    for (std::size_t i = Lo; i < Hi; ++i)
        if (out[i] != Fill) return false;
    return true;
}
template <class T, std::size_t Lo, std::size_t Hi, unsigned char Fill>
concept kept =
    requires { typename std::bool_constant<keeps<T, Lo, Hi, Fill>()>; } && keeps<T, Lo, Hi, Fill>();

// Bisects down to the bytes that are not free values: O(k log n) probes for k such bytes.
template <class T, std::size_t Lo, std::size_t Hi>
constexpr void map_bytes(std::array<ByteRole, sizeof(T)>& roles) {
    if constexpr (kept<T, Lo, Hi, 2>) {
        for (std::size_t i = Lo; i < Hi; ++i) roles[i] = ByteRole::value;
    } else if constexpr (Hi - Lo == 1) {
        roles[Lo] = kept<T, Lo, Hi, 1> ? ByteRole::flag : ByteRole::padding;
    } else {
        map_bytes<T, Lo, Lo + (Hi - Lo) / 2>(roles);
        map_bytes<T, Lo + (Hi - Lo) / 2, Hi>(roles);
    }
}

template <class T>
inline constexpr std::array<ByteRole, sizeof(T)> byte_roles = [] {
    std::array<ByteRole, sizeof(T)> roles{};
    map_bytes<T, 0, sizeof(T)>(roles);
    return roles;
}();

template <class T>
inline constexpr std::size_t value_bytes = [] {
    std::size_t n = 0;
    for (ByteRole r : byte_roles<T>) n += r != ByteRole::padding;
    return n;
}();

// A byte map costs compile time: past this size a type with padding or bools needs serialize().
inline constexpr std::size_t max_mapped_size = 1024;

// The bytes of an x87 long double that carry its value (the other 6 are padding).
inline constexpr std::size_t long_double_bytes =
    std::numeric_limits<long double>::digits == 64 ? 10 : sizeof(long double);

template <class T>
constexpr Kind kind_of();

// Folds f over the element types of a tuple-like T. A std::array's elements are one type, asked
// once: clang caps a fold expression at 256 operands.
template <class T, class F>
constexpr auto over_elements(F f) {
    if constexpr (is_std_array<T>::value)
        return f.template operator()<std::remove_cv_t<typename T::value_type>>(std::tuple_size_v<T>);
    else
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return (std::size_t{0} + ... +
                    f.template operator()<std::remove_cv_t<std::tuple_element_t<I, T>>>(1));
        }(std::make_index_sequence<std::tuple_size_v<T>>{});
}

template <class T>
constexpr bool all_bit_safe() {
    return over_elements<T>([]<class E>(std::size_t) { return std::size_t{kind_of<E>() != Kind::raw}; }) == 0;
}
template <class T>
constexpr std::size_t elements_size() {
    return over_elements<T>([]<class E>(std::size_t n) { return n * sizeof(E); });
}

// How a trivially copyable T that is not one of the standard types travels.
template <class T>
constexpr Kind layout_kind() {
    if constexpr (!castable<T>) return Kind::opaque;
    else if constexpr (kept<T, 0, sizeof(T), 2>) return Kind::raw;
    else if constexpr (sizeof(T) <= max_mapped_size) return Kind::masked;
    else return Kind::too_large;
}

template <class T>
constexpr Kind kind_of() {
    if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T>) return Kind::pointer;
    else if constexpr (is_view<T>::value) return Kind::view;
    else if constexpr (user_codec<T>) return Kind::user;
    else if constexpr (std::is_same_v<T, bool>) return Kind::boolean;
    else if constexpr (std::is_same_v<T, long double>) return Kind::long_double;
    else if constexpr (std::is_same_v<T, std::exception_ptr>) return Kind::exception;
    // Two floating-point values without padding (clang cannot bit_cast g++'s _Complex in a
    // constant expression, so it is not probed).
    else if constexpr (is_complex<T>::value) {
        if constexpr (kind_of<typename T::value_type>() == Kind::raw) return Kind::raw;
        else return layout_kind<T>();
    }
    else if constexpr (is_std_string<T>::value) return Kind::string;
    else if constexpr (is_vector<T>::value) {
        if constexpr (kind_of<typename T::value_type>() == Kind::raw) return Kind::contiguous_raw;
        else return Kind::sequence;
    } else if constexpr (is_optional<T>::value) return Kind::optional;
    else if constexpr (is_variant<T>::value) return Kind::variant;
    else if constexpr (tuple_like<T>) {
        // std::array of bit-safe elements (pair and tuple are not trivially copyable).
        if constexpr (std::is_trivially_copyable_v<T> &&
                      all_bit_safe<T>() && sizeof(T) == elements_size<T>())
            return Kind::raw;
        else return Kind::tuple;
    } else if constexpr (std::is_trivially_copyable_v<T> && !std::is_array_v<T> &&
                         !std::is_reference_v<T>)
        return layout_kind<T>();
    else if constexpr (associative<T>) return Kind::associative;
    else if constexpr (sequence<T>) return Kind::sequence;
    else return Kind::unsupported;
}

template <class T>
constexpr bool encodable();

template <class... T>
constexpr bool variant_encodable(std::variant<T...>*) {
    return (encodable<T>() && ...);
}

template <class T>
constexpr bool encodable() {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::unsupported || k == Kind::pointer || k == Kind::view ||
                  k == Kind::opaque || k == Kind::too_large)
        return false;
    else if constexpr (k == Kind::sequence) return encodable<typename T::value_type>();
    else if constexpr (k == Kind::optional) return encodable<typename T::value_type>();
    else if constexpr (k == Kind::variant) return variant_encodable(static_cast<T*>(nullptr));
    else if constexpr (k == Kind::tuple)
        return over_elements<T>([]<class E>(std::size_t) { return std::size_t{!encodable<E>()}; }) == 0;
    else if constexpr (k == Kind::associative) {
        if constexpr (requires { typename T::mapped_type; })
            return encodable<typename T::key_type>() && encodable<typename T::mapped_type>();
        else return encodable<typename T::key_type>();
    } else return true;
}

template <class T>
constexpr std::size_t min_encoded_size();
template <class... T>
constexpr std::size_t min_variant_size(std::variant<T...>*) {
    return sizeof(std::uint32_t) + std::min({min_encoded_size<T>()...});
}

/// A lower bound of the bytes any value of T encodes to: a count of Ts is checked against it
/// before anything is allocated. User types may encode nothing, so they count as 0.
template <class T>
constexpr std::size_t min_encoded_size() {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::raw) return sizeof(T);
    else if constexpr (k == Kind::masked) return value_bytes<T>;
    else if constexpr (k == Kind::boolean || k == Kind::optional) return 1;
    else if constexpr (k == Kind::exception) return exception_min_bytes;
    else if constexpr (k == Kind::long_double) return long_double_bytes;
    else if constexpr (k == Kind::string || k == Kind::contiguous_raw || k == Kind::sequence ||
                       k == Kind::associative)
        return sizeof(std::uint64_t);
    else if constexpr (k == Kind::tuple)
        return over_elements<T>([]<class E>(std::size_t n) { return n * min_encoded_size<E>(); });
    else if constexpr (k == Kind::variant) return min_variant_size(static_cast<T*>(nullptr));
    else return 0;
}

/// What decoding one element of container C costs against Decoder's allocation budget: the
/// element's object, plus a node's two links for anything but a vector.
template <class C>
constexpr std::size_t element_cost() {
    return sizeof(typename C::value_type) + (is_vector<C>::value ? 0 : 2 * sizeof(void*));
}

template <class T>
void encode_value(Encoder& e, const T& v);
template <class T>
void decode_into(Decoder& d, T& v);
template <class T>
T decode_value(Decoder& d);

template <class T>
void reject() {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::pointer)
        static_assert(always_false<T>,
                      "multiproc: a raw pointer cannot cross processes: its address means nothing "
                      "in another process. Send the value it points to (or use mp::Value/Array).");
    else if constexpr (k == Kind::view)
        static_assert(always_false<T>,
                      "multiproc: std::string_view / std::span refer to memory of this process and "
                      "cannot cross processes. Send a std::string or std::vector instead.");
    else if constexpr (k == Kind::opaque)
        static_assert(always_false<T>,
                      "multiproc: this trivially copyable type cannot travel as raw bytes: it holds "
                      "a pointer, a reference, or a union (std::optional, std::variant) that the "
                      "codec cannot check in a type whose members it cannot see. Give it a "
                      "cereal-style `template <class Ar> void serialize(Ar& ar)`; for a lambda, "
                      "capture plain values only (or pass the data as arguments).");
    else if constexpr (k == Kind::too_large)
        static_assert(always_false<T>,
                      "multiproc: this trivially copyable type has padding or bool members and is "
                      "larger than the codec maps byte by byte (mp::detail::max_mapped_size): give "
                      "it a cereal-style `template <class Ar> void serialize(Ar& ar)`, or remove "
                      "the padding (reorder or pad the members) and the bools.");
    else
        static_assert(always_false<T>,
                      "multiproc: this type cannot cross processes: it is not trivially copyable, "
                      "not a supported standard type (string, vector, map, set, pair, tuple, "
                      "optional, variant, ...), and has no cereal-style `template <class Ar> void "
                      "serialize(Ar&)` (member or free) nor save(Ar&) const + load(Ar&).");
}

template <class T>
void encode_value(Encoder& e, const T& v) {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::user) {
        if constexpr (has_save_load<T>) v.save(e);
        else if constexpr (has_member_serialize<T>) const_cast<T&>(v).serialize(e);
        else serialize(e, const_cast<T&>(v));
    } else if constexpr (k == Kind::boolean) {
        const std::uint8_t b = v ? 1 : 0;
        e.write_bytes(&b, 1);
    } else if constexpr (k == Kind::exception) {
        encode_exception(e, v);
    } else if constexpr (k == Kind::raw) {
        e.write_bytes(std::addressof(v), sizeof(T));
    } else if constexpr (k == Kind::masked) {
        // The value bytes only: padding never leaves the process (it may be uninitialised).
        const auto* src = reinterpret_cast<const std::byte*>(std::addressof(v));
        std::array<std::byte, value_bytes<T>> out{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            if (byte_roles<T>[i] != ByteRole::padding) out[n++] = src[i];
        e.write_bytes(out.data(), out.size());
    } else if constexpr (k == Kind::long_double) {
        e.write_bytes(std::addressof(v), long_double_bytes);
    } else if constexpr (k == Kind::string || k == Kind::contiguous_raw) {
        e.write_size(v.size());
        e.write_bytes(v.data(), v.size() * sizeof(typename T::value_type));
    } else if constexpr (k == Kind::sequence || k == Kind::associative) {
        e.write_size(static_cast<std::uint64_t>(std::distance(v.begin(), v.end())));
        for (const auto& x : v) encode_value(e, x);
    } else if constexpr (k == Kind::tuple && is_std_array<T>::value) {
        for (const auto& x : v) encode_value(e, x);
    } else if constexpr (k == Kind::tuple) {
        std::apply([&](const auto&... xs) { (encode_value(e, xs), ...); }, v);
    } else if constexpr (k == Kind::optional) {
        encode_value(e, v.has_value());
        if (v) encode_value(e, *v);
    } else if constexpr (k == Kind::variant) {
        const auto idx = static_cast<std::uint32_t>(v.index());
        e.write_bytes(&idx, sizeof idx);
        std::visit([&](const auto& x) { encode_value(e, x); }, v);
    } else {
        reject<T>();
    }
}

// The object representation of a masked T: padding zeroed, bool bytes checked.
template <class T>
std::array<std::byte, sizeof(T)> decode_masked(Decoder& d) {
    std::array<std::byte, sizeof(T)> image{};
    const auto in = d.take(value_bytes<T>);
    std::size_t n = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        if (byte_roles<T>[i] == ByteRole::padding) continue;
        image[i] = in[n++];
        if (byte_roles<T>[i] == ByteRole::flag && image[i] > std::byte{1})
            throw DecodeError("multiproc: corrupt message: a bool that is neither 0 nor 1");
    }
    return image;
}

template <class T>
T decode_value(Decoder& d) {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::raw) {
        // bit_cast constructs without a default constructor (lambdas with captures have none).
        std::array<std::byte, sizeof(T)> raw;
        d.read_bytes(raw.data(), sizeof(T));
        return std::bit_cast<T>(raw);
    } else if constexpr (k == Kind::masked) {
        return std::bit_cast<T>(decode_masked<T>(d));
    } else if constexpr (k == Kind::exception) {
        return decode_exception(d);
    } else {
        static_assert(std::is_default_constructible_v<T> || !encodable<T>(),
                      "multiproc: a type decoded through serialize(Ar&) must be default "
                      "constructible");
        T v{};
        decode_into(d, v);
        return v;
    }
}

template <class T, std::size_t... I>
void decode_variant(Decoder& d, T& v, std::uint32_t idx, std::index_sequence<I...>) {
    bool done = ((idx == I ? (v.template emplace<I>(decode_value<std::variant_alternative_t<I, T>>(d)),
                              true)
                           : false) ||
                 ...);
    if (!done) throw DecodeError("multiproc: corrupt message: variant index out of range");
}

template <class T>
void decode_into(Decoder& d, T& v) {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::user) {
        if constexpr (has_save_load<T>) v.load(d);
        else if constexpr (has_member_serialize<T>) v.serialize(d);
        else serialize(d, v);
    } else if constexpr (k == Kind::boolean) {
        std::uint8_t b;
        d.read_bytes(&b, 1);
        if (b > 1) throw DecodeError("multiproc: corrupt message: a bool that is neither 0 nor 1");
        v = b != 0;
    } else if constexpr (k == Kind::raw) {
        d.read_bytes(std::addressof(v), sizeof(T));
    } else if constexpr (k == Kind::masked) {
        const auto image = decode_masked<T>(d);
        std::memcpy(static_cast<void*>(std::addressof(v)), image.data(), sizeof(T));
    } else if constexpr (k == Kind::long_double) {
        v = 0;  // the bytes past the value stay zero
        d.read_bytes(std::addressof(v), long_double_bytes);
    } else if constexpr (k == Kind::exception) {
        v = decode_exception(d);
    } else if constexpr (k == Kind::string || k == Kind::contiguous_raw) {
        using E = typename T::value_type;
        const std::size_t n = d.read_count(sizeof(E));
        v.resize(n);
        d.read_bytes(v.data(), n * sizeof(E));
    } else if constexpr (k == Kind::sequence) {
        using E = typename T::value_type;
        const std::size_t n = d.read_count(min_encoded_size<E>(), element_cost<T>());
        v.clear();
        if constexpr (requires { v.reserve(n); }) v.reserve(n);
        for (std::size_t i = 0; i < n; ++i) v.push_back(decode_value<E>(d));
    } else if constexpr (k == Kind::associative) {
        using K = std::remove_const_t<typename T::key_type>;
        std::size_t min = min_encoded_size<K>();
        if constexpr (requires { typename T::mapped_type; })
            min += min_encoded_size<typename T::mapped_type>();
        const std::size_t n = d.read_count(min, element_cost<T>());
        v.clear();
        for (std::size_t i = 0; i < n; ++i) {
            auto key = decode_value<K>(d);
            if constexpr (requires { typename T::mapped_type; }) {
                auto val = decode_value<typename T::mapped_type>(d);
                v.emplace(std::move(key), std::move(val));
            } else {
                v.emplace(std::move(key));
            }
        }
    } else if constexpr (k == Kind::tuple && is_std_array<T>::value) {
        for (auto& x : v) decode_into(d, x);
    } else if constexpr (k == Kind::tuple) {
        std::apply([&](auto&... xs) { (decode_into(d, xs), ...); }, v);
    } else if constexpr (k == Kind::optional) {
        bool engaged;
        decode_into(d, engaged);
        if (engaged) v.emplace(decode_value<typename T::value_type>(d));
        else v.reset();
    } else if constexpr (k == Kind::variant) {
        std::uint32_t idx;
        d.read_bytes(&idx, sizeof idx);
        decode_variant(d, v, idx, std::make_index_sequence<std::variant_size_v<T>>{});
    } else {
        reject<T>();
    }
}

}  // namespace detail

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
    T v = detail::decode_value<T>(d);
    d.finish();
    return v;
}

}  // namespace mp
