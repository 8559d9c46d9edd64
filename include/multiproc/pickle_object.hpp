// mp::py::object: a Python value whose shape is not known at compile time, as mp::pickle
// decodes it (docs/pickle.md).
//
// An object is a small value (24 bytes) holding one of: None, bool, int (int64, or py::bigint
// beyond), float, or a shared reference to a str, bytes, bytearray, list, tuple, dict, set,
// frozenset, class reference (py::global) or instance of an allowlisted class (py::instance:
// an exception description, multiprocessing.managers.Token). Copies of an object share the
// referenced node, as Python references do: a pickle that names one list twice decodes to two
// objects sharing one py::list, and encoding them again writes the list once. Decoding never
// produces a cycle (a pickle of a list that contains itself is an mp::DecodeError); an object
// built by the program with a cycle leaks, as shared_ptr cycles do.
//
// Thread safety: as std::shared_ptr: distinct objects may be used from any threads; one node
// mutated from one thread must not be read from another without a lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace mp::py {

class object;

/// An int beyond int64: little-endian two's complement bytes, shortest form (Python's LONG1).
struct bigint {
    std::vector<std::byte> le;
    /// The shortest form of v.
    static bigint from_int(std::int64_t v);
    /// The shortest form of v.
    static bigint from_unsigned(std::uint64_t v);
    friend bool operator==(const bigint&, const bigint&) = default;
};

/// Python str (UTF-8 text).
struct str {
    std::string value;
};
/// Python bytes.
struct bytes {
    std::vector<std::byte> value;
};
/// Python bytearray; also the C++ type that encodes as one.
struct bytearray {
    std::vector<std::byte> value;
    friend bool operator==(const bytearray&, const bytearray&) = default;
};
/// Python list.
struct list {
    std::vector<object> items;
};
/// Python tuple.
struct tuple {
    std::vector<object> items;
};
/// Python dict (or collections.OrderedDict when ordered): entries in insertion order.
struct dict {
    std::vector<std::pair<object, object>> items;
    bool ordered = false;
};
/// Python set.
struct set {
    std::vector<object> items;
};
/// Python frozenset.
struct frozenset {
    std::vector<object> items;
};
/// A reference to an allowlisted class or function (module.name), e.g. `builtins.ValueError`.
struct global {
    std::string module, name;
};
/// An instance of an allowlisted class: the class, the constructor's arguments (a tuple) and
/// the state set on it afterwards (None when none), e.g. ValueError('bad', 3) is
/// {builtins.ValueError, ('bad', 3), None}; a manager Token is {multiprocessing.managers.Token,
/// (), (typeid, address, id)}.
struct instance {
    global cls;
    std::shared_ptr<tuple> args;
    std::shared_ptr<const object> state;  // null: no state (Python's BUILD never ran)
};

/// A protocol-5 buffer (Python's pickle.PickleBuffer): with a buffer sink it travels out of band
/// (NEXT_BUFFER, plus READONLY_BUFFER when readonly), else in band as bytes (readonly) or a
/// bytearray. The bytes must outlive the dumps call.
struct pickle_buffer {
    std::span<const std::byte> data;
    bool readonly = true;
};

/// What an object holds.
enum class kind : std::uint8_t {
    none,
    boolean,
    integer,
    big_integer,
    floating,
    str,
    bytes,
    bytearray,
    list,
    tuple,
    dict,
    set,
    frozenset,
    global,
    instance,
};

/// Python's name of a kind ("NoneType", "int", "str", ...), for messages.
std::string_view kind_name(kind k) noexcept;

/// A dynamically typed Python value (see the top of this header).
class object {
public:
    using value_type =
        std::variant<std::monostate, bool, std::int64_t, std::shared_ptr<const bigint>, double,
                     std::shared_ptr<py::str>, std::shared_ptr<py::bytes>,
                     std::shared_ptr<py::bytearray>, std::shared_ptr<py::list>,
                     std::shared_ptr<py::tuple>, std::shared_ptr<py::dict>,
                     std::shared_ptr<py::set>, std::shared_ptr<py::frozenset>,
                     std::shared_ptr<const py::global>, std::shared_ptr<py::instance>>;

    /// None.
    object() noexcept = default;
    /// None.
    object(std::nullptr_t) noexcept {}  // NOLINT: implicit on purpose
    /// True or False.
    object(bool b) noexcept : v_(b) {}  // NOLINT
    /// An int (every integer type but bool and the character types).
    template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool> && !std::is_same_v<I, char> &&
             (sizeof(I) < 8 || std::is_signed_v<I>)) object(I i)
    noexcept  // NOLINT
        : v_(static_cast<std::int64_t>(i)) {}
    /// An int of any size (stored as int64 when it fits).
    object(const bigint& b);  // NOLINT
    /// A float.
    object(double d) noexcept : v_(d) {}  // NOLINT
    /// A str (UTF-8).
    object(std::string s) : v_(std::make_shared<py::str>(py::str{std::move(s)})) {}  // NOLINT
    /// A str (UTF-8).
    object(const char* s) : object(std::string(s)) {}  // NOLINT
    /// A str (UTF-8).
    object(std::string_view s) : object(std::string(s)) {}  // NOLINT
    /// bytes.
    object(std::vector<std::byte> b)  // NOLINT
        : v_(std::make_shared<py::bytes>(py::bytes{std::move(b)})) {}
    /// A bytearray.
    object(py::bytearray b) : v_(std::make_shared<py::bytearray>(std::move(b))) {}  // NOLINT
    /// Shares an existing node (a list, dict, ...).
    template <class Node>
    requires std::is_constructible_v<value_type, std::shared_ptr<Node>> object(
        std::shared_ptr<Node> node)  // NOLINT
        : v_(std::move(node)) {}

    /// What this object holds.
    [[nodiscard]] py::kind kind() const noexcept { return static_cast<py::kind>(v_.index()); }
    /// The underlying variant (std::visit, std::get_if).
    [[nodiscard]] const value_type& value() const noexcept { return v_; }
    /// The underlying variant, mutable.
    [[nodiscard]] value_type& value() noexcept { return v_; }
    /// True for None.
    [[nodiscard]] bool is_none() const noexcept { return v_.index() == 0; }

    /// The bool; mp::DecodeError naming both kinds when this is something else (as below).
    [[nodiscard]] bool as_bool() const;
    /// The int (also from a bool, as Python's int(True)); a bigint is an error here.
    [[nodiscard]] std::int64_t as_int() const;
    /// The float (also from an int, as Python's float(3)).
    [[nodiscard]] double as_float() const;
    /// The str's text.
    [[nodiscard]] const std::string& as_str() const;
    /// The bytes or bytearray's contents.
    [[nodiscard]] const std::vector<std::byte>& as_bytes() const;
    /// The items of a list or tuple.
    [[nodiscard]] const std::vector<object>& as_sequence() const;
    /// The entries of a dict.
    [[nodiscard]] const std::vector<std::pair<object, object>>& as_dict() const;
    /// The items of a set or frozenset.
    [[nodiscard]] const std::vector<object>& as_set() const;
    /// The node of kind K (std::shared_ptr<py::list> for kind::list, ...); mp::DecodeError when
    /// this is something else.
    template <class Node>
    [[nodiscard]] const std::shared_ptr<Node>& node() const;

    /// Deep equality of values (int 1 == bigint 1; 1 != 1.0 and True != 1, unlike Python, so
    /// that a round trip keeps kinds; dicts and sets compare in order).
    friend bool operator==(const object& a, const object& b);

private:
    [[noreturn]] void wrong_kind(std::string_view wanted) const;
    value_type v_;
};

template <class Node>
const std::shared_ptr<Node>& object::node() const {
    const auto* p = std::get_if<std::shared_ptr<Node>>(&v_);
    if (!p) wrong_kind("another kind");
    return *p;
}

/// A new list of the given items.
object make_list(std::vector<object> items = {});
/// A new tuple of the given items.
object make_tuple(std::vector<object> items = {});
/// A new dict of the given entries (ordered: a collections.OrderedDict).
object make_dict(std::vector<std::pair<object, object>> items = {}, bool ordered = false);
/// A new set of the given items.
object make_set(std::vector<object> items = {});
/// A new frozenset of the given items.
object make_frozenset(std::vector<object> items = {});
/// An exception description: an instance of builtins.<type> with args (Python's
/// `type(*args)`), e.g. make_exception("ValueError", {"bad"}).
object make_exception(std::string type, std::vector<object> args);

}  // namespace mp::py
