// mp::py::object: accessors, equality and the factories of multiproc/pickle_object.hpp.
#include "multiproc/pickle_object.hpp"

#include <cstring>
#include <string>
#include <unordered_set>

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

// Structural equality that remembers the pairs of containers it has proven equal, so that two
// values sharing nodes (a DAG: [a, a] with a = [b, b] ... as a pickle's memo or DUP builds in a
// few bytes) compare in time linear in their distinct nodes, not in the size of their
// unfolded trees. A false answer ends the whole comparison, so only equal pairs need
// remembering.
class Equality {
public:
    bool eq(const object& a, const object& b) {
        if (a.kind() != b.kind()) return false;
        return std::visit(
            [&](const auto& x) { return same(x, std::get<std::decay_t<decltype(x)>>(b.value())); },
            a.value());
    }

private:
    static bool same(std::monostate, std::monostate) { return true; }
    static bool same(bool x, bool y) { return x == y; }
    static bool same(std::int64_t x, std::int64_t y) { return x == y; }
    static bool same(double x, double y) {
        return x == y || (x != x && y != y);  // NaN equals NaN: a round trip keeps it
    }
    template <class N>
    bool same(const std::shared_ptr<N>& x, const std::shared_ptr<N>& y) {
        if (x == y) return true;
        if constexpr (std::is_same_v<N, const bigint>) {
            return *x == *y;
        } else if constexpr (std::is_same_v<N, str> || std::is_same_v<N, bytes> ||
                             std::is_same_v<N, bytearray>) {
            return x->value == y->value;
        } else if constexpr (std::is_same_v<N, const global>) {
            return x->module == y->module && x->name == y->name;
        } else {
            const std::pair<const void*, const void*> key{x.get(), y.get()};
            if (proven_.contains(key)) return true;
            if (!same_node(*x, *y)) return false;
            proven_.insert(key);
            return true;
        }
    }
    bool same_node(const dict& x, const dict& y) {
        if (x.ordered != y.ordered || x.items.size() != y.items.size()) return false;
        for (std::size_t i = 0; i < x.items.size(); ++i)
            if (!eq(x.items[i].first, y.items[i].first) ||
                !eq(x.items[i].second, y.items[i].second))
                return false;
        return true;
    }
    bool same_node(const instance& x, const instance& y) {
        if (x.cls.module != y.cls.module || x.cls.name != y.cls.name) return false;
        if (!same_args(x.args.get(), y.args.get())) return false;
        if (!x.state || !y.state) return !x.state && !y.state;
        return eq(*x.state, *y.state);
    }
    template <class N>
    bool same_node(const N& x, const N& y) {
        return same_items(x.items, y.items);
    }
    bool same_args(const tuple* a, const tuple* b) {
        if (!a || !b) return (!a || a->items.empty()) && (!b || b->items.empty());
        return a == b || same_items(a->items, b->items);
    }
    bool same_items(const std::vector<object>& a, const std::vector<object>& b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (!eq(a[i], b[i])) return false;
        return true;
    }

    struct PairHash {
        std::size_t operator()(const std::pair<const void*, const void*>& p) const noexcept {
            return std::hash<const void*>()(p.first) * 31 + std::hash<const void*>()(p.second);
        }
    };
    std::unordered_set<std::pair<const void*, const void*>, PairHash> proven_;
};

}  // namespace

bool operator==(const object& a, const object& b) { return Equality().eq(a, b); }

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
