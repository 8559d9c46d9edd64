// mp::pickle: Python's pickle protocols 2 to 5 for plain data, so that C++ and Python processes
// exchange values over a Connection (Python's Connection.send pickles). docs/pickle.md is the
// user's page: the mapping table, the allowlist of globals, the safety rules, protocol 5.
//
//   C++ (encode; decode accepts)                   Python
//   std::monostate, std::nullptr_t, nullopt ...... None
//   bool ......................................... bool
//   integers (not char), py::bigint .............. int (a bigint when beyond int64)
//   float, double ................................ float (decode also takes an int)
//   std::string, std::string_view, const char* ... str (UTF-8)
//   std::vector<std::byte> ....................... bytes (decode also takes a bytearray)
//   py::bytearray ................................ bytearray
//   std::vector, std::list, std::deque, array .... list (decode also takes a tuple)
//   std::tuple, std::pair ........................ tuple (decode also takes a list)
//   std::map, std::unordered_map ................. dict (and collections.OrderedDict)
//   std::set, std::unordered_set ................. set (decode also takes a frozenset)
//   std::optional<T> ............................. None or T
//   py::object ................................... anything below, decided at run time
//   py::pickle_buffer ............................ protocol 5 PickleBuffer (in or out of band)
//
// Decoding never executes or imports anything. It runs the pickle machine's opcodes over
// values only; a global (GLOBAL/STACK_GLOBAL) must be on a fixed allowlist (builtin exception
// classes, collections.OrderedDict, the builtins and _codecs.encode that protocols 2 and 3
// spell sets, frozensets, bytes and bytearrays with, multiprocessing.managers.Token), anything
// else is an mp::DecodeError naming it (module.name). Every length is checked against the bytes
// that remain before anything is allocated; each opcode builds at most one node, so a decode
// allocates at most a constant times the bytes it was given; results nest at most
// max_depth deep and never form a cycle.
//
// Thread safety: the functions are reentrant; they share nothing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/pickle_object.hpp"

namespace mp::pickle {

/// The protocol dumps writes unless told: 4, Python 3.8-3.13's pickle.DEFAULT_PROTOCOL and so
/// what their multiprocessing Connection.send writes; every Python since 3.4 reads it.
inline constexpr int default_protocol = 4;
/// The newest protocol this codec writes and reads (Python's pickle.HIGHEST_PROTOCOL, 3.8+).
inline constexpr int highest_protocol = 5;
/// How deep decoded values may nest (lists in lists ...), as Python's recursion limit bounds
/// its own pickler.
inline constexpr std::size_t max_depth = 1000;

/// Where dumps puts protocol-5 out-of-band buffers (Python's buffer_callback collecting them):
/// the spans point into the caller's py::pickle_buffer data.
using buffer_sink = std::vector<std::span<const std::byte>>;

namespace detail {

/// The pickle writer: opcodes into one growing byte vector. The templates below drive it.
class Writer {
public:
    /// Starts a pickle of `protocol` (2..5; else mp::UsageError); out-of-band buffers go to sink.
    Writer(int protocol, buffer_sink* sink);
    /// Ends the pickle (STOP) and returns its bytes.
    std::vector<std::byte> finish();
    /// Items per APPENDS/SETITEMS/ADDITEMS, as Python batches them: a reader's stack stays small.
    static constexpr std::size_t batch = 1000;
    /// Makes room for about n more bytes at once (a hint: fewer regrowths of a large pickle).
    void expect(std::size_t n) {
        if (static_cast<std::size_t>(end_ - cur_) < n) reserve_more(n);
    }
    /// The protocol being written.
    [[nodiscard]] int protocol() const noexcept { return protocol_; }

    /// None.
    void none() { put(0x4e); }
    /// True or False.
    void boolean(bool b) { put(b ? 0x88 : 0x89); }
    /// An int in the shortest opcode.
    void integer(std::int64_t v) {
        if (v >= 0 && v < 256) {
            std::byte* p = grow(2);
            p[0] = std::byte{0x4b};  // BININT1
            p[1] = static_cast<std::byte>(v);
        } else if (v >= 0 && v < 65536) {
            std::byte* p = grow(3);
            p[0] = std::byte{0x4d};  // BININT2
            p[1] = static_cast<std::byte>(v & 0xff);
            p[2] = static_cast<std::byte>(v >> 8);
        } else if (v >= std::numeric_limits<std::int32_t>::min() &&
                   v <= std::numeric_limits<std::int32_t>::max()) {
            std::byte* p = grow(5);
            p[0] = std::byte{0x4a};  // BININT, little endian
            const auto u = static_cast<std::uint32_t>(v);
            for (int i = 0; i < 4; ++i) p[1 + i] = static_cast<std::byte>(u >> (8 * i));
        } else {
            long_int(v);
        }
    }
    /// An unsigned int (a LONG1 beyond int64).
    void unsigned_integer(std::uint64_t v);
    /// An int beyond int64.
    void big(const py::bigint& b);
    /// A float (BINFLOAT: big-endian IEEE double).
    void floating(double d) {
        std::uint64_t u;
        std::memcpy(&u, &d, 8);
        std::byte* p = grow(9);
        p[0] = std::byte{0x47};
        for (int i = 0; i < 8; ++i) p[1 + i] = static_cast<std::byte>(u >> (56 - 8 * i));
    }
    /// A str (UTF-8 text, not checked).
    void str(std::string_view s);
    /// bytes.
    void bytes(std::span<const std::byte> b);
    /// A bytearray.
    void bytearray(std::span<const std::byte> b);
    /// A protocol-5 buffer (mp::UsageError below protocol 5, as Python's PicklingError).
    void buffer(const py::pickle_buffer& b);
    /// A reference to a class or function (module.name).
    void global(std::string_view module, std::string_view name);

    /// Writes r's items in batches of `batch`: MARK, the items (each by save_one), closer (the
    /// APPENDS or SETITEMS opcode); nothing for an empty r.
    template <class R, class F>
    void batches(const R& r, std::uint8_t closer, F&& save_one) {
        std::size_t n = 0;
        for (const auto& item : r) {
            if (n % batch == 0) mark();
            save_one(item);
            if (++n % batch == 0) put(closer);
        }
        if (n % batch) put(closer);
    }

    /// Pushes a mark (the start of a variable number of items).
    void mark() { put(0x28); }
    /// An empty list; then its items through batches(items, APPENDS, ...).
    void empty_list() { put(0x5d); }
    /// Appends the items since the mark to the list below it.
    void appends() { put(0x65); }
    /// An empty dict; then its entries through batches(items, SETITEMS, ...).
    void empty_dict() { put(0x7d); }
    /// Sets the pairs since the mark in the dict below it.
    void setitems() { put(0x75); }
    /// Before n tuple items: a mark when n > 3 (TUPLE1..3 need none).
    void begin_tuple(std::size_t n) {
        if (n > 3) mark();
    }
    /// After n tuple items: the opcode that makes the tuple of them.
    void end_tuple(std::size_t n) {
        static constexpr std::uint8_t ops[] = {0x29, 0x85, 0x86, 0x87};  // EMPTY_TUPLE, TUPLE1-3
        put(n <= 3 ? ops[n] : 0x74);
    }
    /// Before n set items (frozen: a frozenset): what opens a set at this protocol.
    void begin_set(bool frozen, std::size_t n);
    /// After the set items.
    void end_set(bool frozen, std::size_t n);

    /// Encodes a dynamic object (shared nodes once, then by memo reference).
    void object(const py::object& o);

    /// Appends one opcode byte.
    void put(std::uint8_t op) { *grow(1) = std::byte{op}; }
    /// Room for n more bytes at the end; returns where they go.
    std::byte* grow(std::size_t n) {
        if (static_cast<std::size_t>(end_ - cur_) < n) reserve_more(n);
        std::byte* p = cur_;
        cur_ += n;
        return p;
    }

private:
    void long_int(std::int64_t v);
    void reserve_more(std::size_t n);
    void counted(std::uint8_t op1, std::uint8_t op4, std::uint8_t op8, std::size_t n,
                 const void* data);
    void object_at(const py::object& o, std::size_t depth);
    bool memo_get(const void* node);
    void memo_put(const void* node);

    // out_ is sized to its capacity; [data, cur_) is written, [cur_, end_) is room.
    std::vector<std::byte> out_;
    std::byte* cur_ = nullptr;
    std::byte* end_ = nullptr;
    int protocol_;
    buffer_sink* sink_;
    std::unordered_map<const void*, std::uint32_t> memo_;
    std::uint32_t memo_count_ = 0;
};

template <class T, template <class...> class Tmpl>
inline constexpr bool is_spec_v = false;
template <template <class...> class Tmpl, class... A>
inline constexpr bool is_spec_v<Tmpl<A...>, Tmpl> = true;

template <class T>
concept map_like = requires {
    typename T::key_type;
    typename T::mapped_type;
};
template <class T>
concept set_like = requires {
    typename T::key_type;
}
&&!map_like<T>;
template <class T>
concept list_like = requires(const T& t) {
    t.begin();
    t.end();
    t.size();
    typename T::value_type;
}
&&!map_like<T> && !set_like<T>;
template <class T>
inline constexpr bool is_std_array_v = false;
template <class U, std::size_t N>
inline constexpr bool is_std_array_v<std::array<U, N>> = true;

template <class T>
inline constexpr bool always_false_v = false;

template <class T>
void save(Writer& w, const T& v);

template <class Tup, std::size_t... I>
void save_tuple(Writer& w, const Tup& t, std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(I);
    w.begin_tuple(n);
    (save(w, std::get<I>(t)), ...);
    w.end_tuple(n);
}

// One function for every C++ type of the mapping table (the top of this header).
template <class T>
void save(Writer& w, const T& v) {
    if constexpr (std::is_same_v<T, py::object>) {
        w.object(v);
    } else if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, std::nullptr_t> ||
                         std::is_same_v<T, std::nullopt_t>) {
        w.none();
    } else if constexpr (std::is_same_v<T, bool>) {
        w.boolean(v);
    } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, wchar_t> ||
                         std::is_same_v<T, char8_t> || std::is_same_v<T, char16_t> ||
                         std::is_same_v<T, char32_t>) {
        static_assert(always_false_v<T>, "mp::pickle: a character is not a Python value; "
                                         "use a std::string (str) or an integer type (int)");
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8) w.unsigned_integer(v);
        else w.integer(static_cast<std::int64_t>(v));
    } else if constexpr (std::is_floating_point_v<T>) {
        w.floating(static_cast<double>(v));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        w.str(std::string_view(v));
    } else if constexpr (std::is_same_v<T, std::vector<std::byte>>) {
        w.bytes(v);
    } else if constexpr (std::is_same_v<T, py::bytearray>) {
        w.bytearray(v.value);
    } else if constexpr (std::is_same_v<T, py::bigint>) {
        w.big(v);
    } else if constexpr (std::is_same_v<T, py::pickle_buffer>) {
        w.buffer(v);
    } else if constexpr (is_spec_v<T, std::optional>) {
        if (v) save(w, *v);
        else w.none();
    } else if constexpr (is_spec_v<T, std::tuple> || is_spec_v<T, std::pair>) {
        save_tuple(w, v, std::make_index_sequence<std::tuple_size_v<T>>{});
    } else if constexpr (map_like<T>) {
        w.empty_dict();
        w.batches(v, 0x75 /* SETITEMS */, [&](const auto& kv) {
            save(w, kv.first);
            save(w, kv.second);
        });
    } else if constexpr (set_like<T>) {
        w.begin_set(false, v.size());
        for (const auto& item : v) save(w, item);
        w.end_set(false, v.size());
    } else if constexpr (list_like<T>) {
        w.empty_list();
        w.batches(v, 0x65 /* APPENDS */, [&](const auto& item) { save(w, item); });
    } else {
        static_assert(always_false_v<T>, "mp::pickle: this type has no Python counterpart "
                                         "(see the mapping table in multiproc/pickle.hpp)");
    }
}

/// The fast path for flat pickles (src/pickle_flat.cpp): true when data is exactly a list of
/// numbers (or a dict of str to numbers) in the opcodes picklers write for it, appended to out;
/// false when it is anything else (the general decoder then decides).
bool load_flat(std::span<const std::byte> data, std::vector<std::int64_t>& out);
/// As above, for floats (ints are taken as floats, as convert does).
bool load_flat(std::span<const std::byte> data, std::vector<double>& out);
/// As above, for a dict of str to int.
bool load_flat(std::span<const std::byte> data,
               std::vector<std::pair<std::string, std::int64_t>>& out);
/// As above, for a dict of str to float.
bool load_flat(std::span<const std::byte> data, std::vector<std::pair<std::string, double>>& out);

template <class T>
concept flat_list =
    std::is_same_v<T, std::vector<std::int64_t>> || std::is_same_v<T, std::vector<double>>;
template <class T>
concept flat_dict = map_like<T> && std::is_same_v<typename T::key_type, std::string> &&
    (std::is_same_v<typename T::mapped_type, std::int64_t> ||
     std::is_same_v<typename T::mapped_type, double>);

// A T decoded by the fast path, or nothing when the pickle is not flat.
template <class T>
std::optional<T> load_flat_as(std::span<const std::byte> data) {
    if constexpr (flat_list<T>) {
        T out;
        if (load_flat(data, out)) return out;
    } else if constexpr (flat_dict<T>) {
        std::vector<std::pair<std::string, typename T::mapped_type>> entries;
        if (load_flat(data, entries)) {
            T out;
            if constexpr (requires { out.reserve(entries.size()); }) out.reserve(entries.size());
            for (auto& [k, v] : entries) out.insert_or_assign(std::move(k), v);
            return out;
        }
    }
    return std::nullopt;
}

[[noreturn]] void wrong_type(const py::object& o, std::string_view wanted);
[[noreturn]] void wrong_length(std::size_t got, std::size_t wanted);
[[noreturn]] void out_of_range(std::string_view wanted);

template <class T>
T convert(const py::object& o);

template <class Tup, std::size_t... I>
Tup convert_tuple(const std::vector<py::object>& items, std::index_sequence<I...>) {
    if (items.size() != sizeof...(I)) wrong_length(items.size(), sizeof...(I));
    return Tup(convert<std::tuple_element_t<I, Tup>>(items[I])...);
}

// The decoding side of the mapping table: a value of the expected kind becomes a T.
template <class T>
T convert(const py::object& o) {
    if constexpr (std::is_same_v<T, py::object>) {
        return o;
    } else if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, std::nullptr_t>) {
        if (!o.is_none()) wrong_type(o, "None");
        return T{};
    } else if constexpr (std::is_same_v<T, bool>) {
        return o.as_bool();
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8) {
            if (const auto* b = std::get_if<std::shared_ptr<const py::bigint>>(&o.value())) {
                std::uint64_t u = 0;
                const auto& le = (*b)->le;
                if (le.size() > 9 || (le.size() == 9 && le[8] != std::byte{0}) ||
                    std::to_integer<int>(le.back()) & 0x80)
                    out_of_range("an unsigned 64-bit int");
                for (std::size_t i = 0; i < le.size() && i < 8; ++i)
                    u |= std::to_integer<std::uint64_t>(le[i]) << (8 * i);
                return u;
            }
        }
        const std::int64_t i = o.as_int();
        if constexpr (sizeof(T) < 8 || std::is_unsigned_v<T>) {
            if (i < 0 && std::is_unsigned_v<T>) out_of_range("an unsigned int");
            if (static_cast<std::uint64_t>(i < 0 ? -(i + 1) : i) >
                static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
                out_of_range("a narrower int");
        }
        return static_cast<T>(i);
    } else if constexpr (std::is_floating_point_v<T>) {
        return static_cast<T>(o.as_float());
    } else if constexpr (std::is_same_v<T, std::string>) {
        return o.as_str();
    } else if constexpr (std::is_same_v<T, std::vector<std::byte>>) {
        return o.as_bytes();
    } else if constexpr (std::is_same_v<T, py::bytearray>) {
        return py::bytearray{o.as_bytes()};
    } else if constexpr (std::is_same_v<T, py::bigint>) {
        if (const auto* b = std::get_if<std::shared_ptr<const py::bigint>>(&o.value())) return **b;
        return py::bigint::from_int(o.as_int());
    } else if constexpr (is_spec_v<T, std::optional>) {
        if (o.is_none()) return T{};
        return T(convert<typename T::value_type>(o));
    } else if constexpr (is_spec_v<T, std::tuple> || is_spec_v<T, std::pair>) {
        return convert_tuple<T>(o.as_sequence(), std::make_index_sequence<std::tuple_size_v<T>>{});
    } else if constexpr (map_like<T>) {
        T out;
        for (const auto& [k, v] : o.as_dict())
            out.insert_or_assign(convert<typename T::key_type>(k),
                                 convert<typename T::mapped_type>(v));
        return out;
    } else if constexpr (set_like<T>) {
        T out;
        for (const auto& item : o.as_set()) out.insert(convert<typename T::key_type>(item));
        return out;
    } else if constexpr (is_std_array_v<T>) {
        const auto& items = o.as_sequence();
        if (items.size() != std::tuple_size_v<T>) wrong_length(items.size(), std::tuple_size_v<T>);
        T out;
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = convert<typename T::value_type>(items[i]);
        return out;
    } else if constexpr (list_like<T>) {
        const auto& items = o.as_sequence();
        T out;
        if constexpr (requires { out.reserve(items.size()); }) out.reserve(items.size());
        for (const auto& item : items) out.push_back(convert<typename T::value_type>(item));
        return out;
    } else {
        static_assert(always_false_v<T>, "mp::pickle: this type has no Python counterpart "
                                         "(see the mapping table in multiproc/pickle.hpp)");
    }
}

}  // namespace detail

/// Pickles a value at `protocol` (2..5) as Python's pickle.dumps(obj, protocol) would, so that
/// Python's pickle.loads returns the Python counterpart (mapping table above). Out-of-band
/// py::pickle_buffer data goes to `buffers` when given (protocol 5), else in band.
template <class T>
std::vector<std::byte> dumps(const T& value, int protocol = default_protocol,
                             buffer_sink* buffers = nullptr) {
    detail::Writer w(protocol, buffers);
    if constexpr (requires { value.size(); }) w.expect(value.size() * 8);
    detail::save(w, value);
    return w.finish();
}

/// Unpickles protocols 2..5 into a dynamic object; `buffers` are the out-of-band buffers of a
/// protocol-5 pickle (Python's loads(data, buffers=...)). mp::DecodeError for anything bad:
/// truncated, corrupt, trailing bytes, a global off the allowlist (named), too deep, a cycle.
py::object loads(std::span<const std::byte> data,
                 std::span<const std::span<const std::byte>> buffers = {});

/// Unpickles into a T of the mapping table; mp::DecodeError when the value is not a T.
template <class T>
T loads(std::span<const std::byte> data, std::span<const std::span<const std::byte>> buffers = {}) {
    if constexpr (detail::flat_list<T> || detail::flat_dict<T>)
        if (auto flat = detail::load_flat_as<T>(data)) return std::move(*flat);
    return detail::convert<T>(loads(data, buffers));
}

}  // namespace mp::pickle

namespace mp::detail {

/// Connection::send_py / recv_py's codec (declared in connection.hpp).
template <class T>
struct PyCodec {
    /// `value` pickled at `protocol` (default: pickle::default_protocol).
    static std::vector<std::byte> dumps(const T& value, std::optional<int> protocol) {
        return pickle::dumps(value, protocol.value_or(pickle::default_protocol));
    }
    /// One pickle read as a T.
    static T loads(const std::vector<std::byte>& message) { return pickle::loads<T>(message); }
};

}  // namespace mp::detail
