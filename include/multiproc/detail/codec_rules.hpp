// The codec's rule for each Kind of type (detail/codec_traits.hpp): how a value is written to
// an Encoder and read back from a Decoder, and the compile-time error for a type that cannot
// cross. The wire layout of each rule is the table of <multiproc/reduction.hpp>.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "multiproc/detail/archive.hpp"
#include "multiproc/detail/codec_traits.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/errors.hpp"

namespace mp::detail {

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
        static_assert(
            always_false<T>,
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
    bool done =
        ((idx == I
              ? (v.template emplace<I>(decode_value<std::variant_alternative_t<I, T>>(d)), true)
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


/// Decodes the rest of d as one R (void: nothing), every byte belonging to it (else
/// mp::DecodeError): a whole message, a reply, a task result.
template <class R>
R decode_rest(Decoder& d) {
    if constexpr (std::is_void_v<R>) {
        d.finish();
    } else {
        R r = decode_value<R>(d);
        d.finish();
        return r;
    }
}

}  // namespace mp::detail
