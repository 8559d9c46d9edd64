// How the codec classifies a type (docs/reduction.md): the standard types it knows, the
// cereal-style user conventions, and the byte map of a trivially copyable type found at compile
// time, folded into one Kind per type; what is encodable, and the least bytes a value takes.
#pragma once

#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
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

#include "multiproc/detail/archive.hpp"

namespace mp::detail {

template <class>
inline constexpr bool always_false = false;

template <class T>
struct is_std_string : std::false_type {};
template <class C, class Tr, class A>
struct is_std_string<std::basic_string<C, Tr, A>>
    : std::bool_constant<std::is_trivially_copyable_v<C>> {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_variant : std::false_type {};
template <class... T>
struct is_variant<std::variant<T...>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_view : std::false_type {};
template <class C, class Tr>
struct is_view<std::basic_string_view<C, Tr>> : std::true_type {};
template <class T, std::size_t N>
struct is_view<std::span<T, N>> : std::true_type {};

template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
// std::complex, recognised by its shape rather than by name (so that the codec does not
// include <complex>): two values of a floating-point value_type, real() and imag().
template <class T>
concept complex_like = std::is_floating_point_v<typename T::value_type> &&
                           sizeof(T) == 2 * sizeof(typename T::value_type) &&
                       requires(const T& c) {
    { c.real() } -> std::same_as<typename T::value_type>;
    { c.imag() } -> std::same_as<typename T::value_type>;
};

template <class T>
concept tuple_like = requires {
    std::tuple_size<T>::value;
};

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
concept associative = requires {
    typename T::key_type;
}
&&requires(T& c) {
    c.size();
    c.begin();
    c.end();
    c.clear();
};
template <class T>
concept sequence = !is_std_string<T>::value && requires(T & c, typename T::value_type v) {
    c.size();
    c.begin();
    c.end();
    c.push_back(std::move(v));
};

enum class Kind {
    unsupported,
    pointer,
    view,
    opaque,     // trivially copyable, but holds a pointer, reference or union we cannot see into
    too_large,  // trivially copyable with padding or bools, too large to map byte by byte
    user,
    boolean,
    long_double,
    raw,     // bit-safe: every byte is value and any value is valid: one memcpy
    masked,  // trivially copyable with padding and/or bool bytes: value bytes only, checked
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
concept castable = requires {
    typename std::bool_constant<round_trips<T>()>;
};

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
concept kept = requires {
    typename std::bool_constant<keeps<T, Lo, Hi, Fill>()>;
}
&&keeps<T, Lo, Hi, Fill>();

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
        return f.template operator()<std::remove_cv_t<typename T::value_type>>(
            std::tuple_size_v<T>);
    else return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return (std::size_t{0} + ... +
                    f.template operator()<std::remove_cv_t<std::tuple_element_t<I, T>>>(1));
        }
    (std::make_index_sequence<std::tuple_size_v<T>>{});
}

template <class T>
constexpr bool all_bit_safe() {
    return over_elements<T>([]<class E>(std::size_t) {
               return std::size_t{kind_of<E>() != Kind::raw};
           }) == 0;
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
    else if constexpr (complex_like<T>) {
        if constexpr (kind_of<typename T::value_type>() == Kind::raw) return Kind::raw;
        else return layout_kind<T>();
    } else if constexpr (is_std_string<T>::value) return Kind::string;
    else if constexpr (is_vector<T>::value) {
        if constexpr (kind_of<typename T::value_type>() == Kind::raw) return Kind::contiguous_raw;
        else return Kind::sequence;
    } else if constexpr (is_optional<T>::value) return Kind::optional;
    else if constexpr (is_variant<T>::value) return Kind::variant;
    else if constexpr (tuple_like<T>) {
        // std::array of bit-safe elements (pair and tuple are not trivially copyable).
        if constexpr (std::is_trivially_copyable_v<T> && all_bit_safe<T>() &&
                      sizeof(T) == elements_size<T>())
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
        return over_elements<T>([]<class E>(std::size_t) {
                   return std::size_t{!encodable<E>()};
               }) == 0;
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
    const std::size_t sizes[] = {min_encoded_size<T>()...};
    std::size_t least = sizes[0];
    for (std::size_t s : sizes) least = s < least ? s : least;
    return sizeof(std::uint32_t) + least;
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

}  // namespace mp::detail
