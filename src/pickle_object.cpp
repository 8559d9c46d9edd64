// mp::py::object: accessors, equality and the factories of multiproc/pickle_object.hpp.
#include "multiproc/pickle_object.hpp"

#include <cstring>
#include <string>

#include "multiproc/errors.hpp"

namespace mp::py {

std::string_view kind_name(kind k) noexcept {
    static constexpr std::string_view names[] = {"NoneType",  "bool",  "int",     "int",
                                                 "float",     "str",   "bytes",   "bytearray",
                                                 "list",      "tuple", "dict",    "set",
                                                 "frozenset", "class", "instance"};
    const auto i = static_cast<std::size_t>(k);
    return i < std::size(names) ? names[i] : "?";
}

bigint bigint::from_int(std::int64_t v) {
    bigint b;
    if (v == 0) return b;  // Python's LONG1 for 0 has no bytes
    for (int i = 0; i < 8; ++i) b.le.push_back(static_cast<std::byte>(v >> (8 * i)));
    // Drop redundant sign bytes: 0x00 above a byte without its top bit, 0xff above one with it.
    while (b.le.size() > 1) {
        const auto top = std::to_integer<unsigned>(b.le.back());
        const auto next = std::to_integer<unsigned>(b.le[b.le.size() - 2]);
        if ((top == 0 && !(next & 0x80)) || (top == 0xff && (next & 0x80))) b.le.pop_back();
        else break;
    }
    return b;
}

bigint bigint::from_unsigned(std::uint64_t v) {
    if (v <= static_cast<std::uint64_t>(INT64_MAX)) return from_int(static_cast<std::int64_t>(v));
    bigint b;
    for (int i = 0; i < 8; ++i) b.le.push_back(static_cast<std::byte>(v >> (8 * i)));
    b.le.push_back(std::byte{0});  // the top bit is set: a positive value needs a sign byte
    return b;
}

namespace {
// The int64 a bigint of at most 8 bytes holds.
std::int64_t small_value(const bigint& b) {
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < b.le.size(); ++i)
        u |= std::to_integer<std::uint64_t>(b.le[i]) << (8 * i);
    if (!b.le.empty() && b.le.size() < 8 && (std::to_integer<unsigned>(b.le.back()) & 0x80))
        u |= ~std::uint64_t{0} << (8 * b.le.size());
    return static_cast<std::int64_t>(u);
}
}  // namespace

object::object(const bigint& b) {
    if (b.le.size() <= 8) v_ = small_value(b);
    else v_ = std::make_shared<const bigint>(b);
}

void object::wrong_kind(std::string_view wanted) const {
    throw DecodeError("mp::pickle: expected " + std::string(wanted) + ", got " +
                      std::string(kind_name(kind())));
}

bool object::as_bool() const {
    if (const bool* b = std::get_if<bool>(&v_)) return *b;
    wrong_kind("bool");
}

std::int64_t object::as_int() const {
    if (const auto* i = std::get_if<std::int64_t>(&v_)) return *i;
    if (const bool* b = std::get_if<bool>(&v_)) return *b ? 1 : 0;
    if (kind() == kind::big_integer)
        throw DecodeError("mp::pickle: an int beyond 64 bits (decode it as py::bigint)");
    wrong_kind("int");
}

double object::as_float() const {
    if (const double* d = std::get_if<double>(&v_)) return *d;
    if (const auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
    wrong_kind("float");
}

const std::string& object::as_str() const {
    if (const auto* s = std::get_if<std::shared_ptr<py::str>>(&v_)) return (*s)->value;
    wrong_kind("str");
}

const std::vector<std::byte>& object::as_bytes() const {
    if (const auto* b = std::get_if<std::shared_ptr<py::bytes>>(&v_)) return (*b)->value;
    if (const auto* b = std::get_if<std::shared_ptr<py::bytearray>>(&v_)) return (*b)->value;
    wrong_kind("bytes");
}

const std::vector<object>& object::as_sequence() const {
    if (const auto* l = std::get_if<std::shared_ptr<py::list>>(&v_)) return (*l)->items;
    if (const auto* t = std::get_if<std::shared_ptr<py::tuple>>(&v_)) return (*t)->items;
    wrong_kind("list or tuple");
}

const std::vector<std::pair<object, object>>& object::as_dict() const {
    if (const auto* d = std::get_if<std::shared_ptr<py::dict>>(&v_)) return (*d)->items;
    wrong_kind("dict");
}

const std::vector<object>& object::as_set() const {
    if (const auto* s = std::get_if<std::shared_ptr<py::set>>(&v_)) return (*s)->items;
    if (const auto* f = std::get_if<std::shared_ptr<py::frozenset>>(&v_)) return (*f)->items;
    wrong_kind("set or frozenset");
}

namespace {
bool same_items(const std::vector<object>& a, const std::vector<object>& b) { return a == b; }
bool same_node(const tuple* a, const tuple* b) {
    if (!a || !b) return (!a || a->items.empty()) && (!b || b->items.empty());
    return same_items(a->items, b->items);
}
}  // namespace

// One comparison per kind, kept together so none is forgotten.
bool operator==(const object& a, const object& b) {
    if (a.kind() != b.kind()) return false;
    return std::visit(
        [&](const auto& x) -> bool {
            using V = std::decay_t<decltype(x)>;
            const auto& y = std::get<V>(b.value());
            if constexpr (std::is_same_v<V, std::monostate>) {
                return true;
            } else if constexpr (std::is_same_v<V, bool> || std::is_same_v<V, std::int64_t>) {
                return x == y;
            } else if constexpr (std::is_same_v<V, double>) {
                return x == y || (x != x && y != y);  // NaN equals NaN: a round trip keeps it
            } else {
                if (x == y) return true;
                using N = typename V::element_type;
                if constexpr (std::is_same_v<N, const bigint>) {
                    return *x == *y;
                } else if constexpr (std::is_same_v<N, str> || std::is_same_v<N, bytes> ||
                                     std::is_same_v<N, bytearray>) {
                    return x->value == y->value;
                } else if constexpr (std::is_same_v<N, dict>) {
                    return x->ordered == y->ordered && x->items == y->items;
                } else if constexpr (std::is_same_v<N, const global>) {
                    return x->module == y->module && x->name == y->name;
                } else if constexpr (std::is_same_v<N, instance>) {
                    const bool states = (!x->state && !y->state) ||
                                        (x->state && y->state && *x->state == *y->state);
                    return x->cls.module == y->cls.module && x->cls.name == y->cls.name &&
                           same_node(x->args.get(), y->args.get()) && states;
                } else {
                    return same_items(x->items, y->items);
                }
            }
        },
        a.value());
}

object make_list(std::vector<object> items) {
    return object(std::make_shared<list>(list{std::move(items)}));
}
object make_tuple(std::vector<object> items) {
    return object(std::make_shared<tuple>(tuple{std::move(items)}));
}
object make_dict(std::vector<std::pair<object, object>> items, bool ordered) {
    return object(std::make_shared<dict>(dict{std::move(items), ordered}));
}
object make_set(std::vector<object> items) {
    return object(std::make_shared<set>(set{std::move(items)}));
}
object make_frozenset(std::vector<object> items) {
    return object(std::make_shared<frozenset>(frozenset{std::move(items)}));
}
object make_exception(std::string type, std::vector<object> args) {
    return object(std::make_shared<instance>(
        instance{global{"builtins", std::move(type)},
                 std::make_shared<tuple>(tuple{std::move(args)}), nullptr}));
}

}  // namespace mp::py
