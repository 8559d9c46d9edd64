// Python's ==, < and bool() on the plain values a manager server holds for Python clients: what a list's
// count, index, remove, `in` and sort compare with (1 == 1.0 == True; tuples item by item).
#include <algorithm>
#include <cmath>

#include "manager_py.hpp"

namespace mp::detail {

namespace {

using py::kind;
using py::object;

bool is_number(const object& o) {
    return o.kind() == kind::boolean || o.kind() == kind::integer ||
           o.kind() == kind::big_integer || o.kind() == kind::floating;
}

bool negative(const py::bigint& b) {
    return !b.le.empty() && (std::to_integer<unsigned>(b.le.back()) & 0x80U) != 0;
}

// The sign of a - b for two ints, either of them beyond int64 (a bigint).
int compare_ints(const object& a, const object& b) {
    if (a.kind() != kind::big_integer && b.kind() != kind::big_integer) {
        const std::int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.kind() != kind::big_integer) return -compare_ints(b, a);
    const py::bigint& x = *a.node<const py::bigint>();
    if (b.kind() != kind::big_integer) return negative(x) ? -1 : 1;  // beyond any int64
    const py::bigint& y = *b.node<const py::bigint>();
    if (negative(x) != negative(y)) return negative(x) ? -1 : 1;
    if (x.le.size() != y.le.size())  // shortest forms: the longer is further from zero
        return (x.le.size() > y.le.size()) != negative(x) ? 1 : -1;
    for (std::size_t i = x.le.size(); i-- > 0;)
        if (x.le[i] != y.le[i]) return x.le[i] > y.le[i] ? 1 : -1;
    return 0;
}

// A bigint as a float (its magnitude is all a comparison with a float needs).
double approximate(const object& o) {
    if (o.kind() != kind::big_integer) return o.kind() == kind::boolean ? o.as_int() : o.as_float();
    const py::bigint& b = *o.node<const py::bigint>();
    double v = 0;
    for (std::size_t i = b.le.size(); i-- > 0;) v = v * 256 + std::to_integer<unsigned>(b.le[i]);
    if (negative(b)) v -= std::ldexp(1.0, static_cast<int>(8 * b.le.size()));
    return v;
}

int compare_numbers(const object& a, const object& b) {
    if (a.kind() != kind::floating && b.kind() != kind::floating) return compare_ints(a, b);
    const double x = approximate(a), y = approximate(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

[[noreturn]] void not_supported(const object& a, const object& b) {
    py_raise("TypeError",
             {"'<' not supported between instances of '" + std::string(py::kind_name(a.kind())) +
              "' and '" + std::string(py::kind_name(b.kind())) + "'"});
}

bool is_bytes(const object& o) { return o.kind() == kind::bytes || o.kind() == kind::bytearray; }
bool is_set(const object& o) { return o.kind() == kind::set || o.kind() == kind::frozenset; }

// Every item of `part` equals one of `whole`.
bool all_in(const std::vector<object>& part, const std::vector<object>& whole) {
    return std::all_of(part.begin(), part.end(), [&](const object& x) {
        return std::any_of(whole.begin(), whole.end(),
                           [&](const object& y) { return py_eq(x, y); });
    });
}

}  // namespace

bool py_eq(const object& a, const object& b) {
    if (is_number(a) && is_number(b)) {
        const bool nan = (a.kind() == kind::floating && a.as_float() != a.as_float()) ||
                         (b.kind() == kind::floating && b.as_float() != b.as_float());
        return !nan && compare_numbers(a, b) == 0;
    }
    if (is_bytes(a) && is_bytes(b)) return a.as_bytes() == b.as_bytes();
    if (is_set(a) && is_set(b))
        return a.as_set().size() == b.as_set().size() && all_in(a.as_set(), b.as_set());
    if (a.kind() != b.kind()) return false;
    if (a.kind() == kind::list || a.kind() == kind::tuple) {
        const auto &x = a.as_sequence(), &y = b.as_sequence();
        return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), py_eq);
    }
    if (a.kind() == kind::dict) {
        const auto &x = a.as_dict(), &y = b.as_dict();
        return x.size() == y.size() && std::all_of(x.begin(), x.end(), [&](const auto& kv) {
                   return std::any_of(y.begin(), y.end(), [&](const auto& other) {
                       return py_eq(kv.first, other.first) && py_eq(kv.second, other.second);
                   });
               });
    }
    return a == b;
}

bool py_truth(const object& o) {
    switch (o.kind()) {
        case kind::none: return false;
        case kind::boolean:
        case kind::integer: return o.as_int() != 0;
        case kind::floating: return o.as_float() != 0;
        case kind::str: return !o.as_str().empty();
        case kind::bytes:
        case kind::bytearray: return !o.as_bytes().empty();
        case kind::list:
        case kind::tuple: return !o.as_sequence().empty();
        case kind::dict: return !o.as_dict().empty();
        case kind::set:
        case kind::frozenset: return !o.as_set().empty();
        default: return true;
    }
}

bool py_less(const object& a, const object& b) {
    if (is_number(a) && is_number(b)) return compare_numbers(a, b) < 0;
    if (a.kind() == kind::str && b.kind() == kind::str)
        return a.as_str() < b.as_str();  // UTF-8 orders as the code points do
    if (is_bytes(a) && is_bytes(b)) {
        const auto &x = a.as_bytes(), &y = b.as_bytes();
        return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
    }
    if (a.kind() == b.kind() && (a.kind() == kind::list || a.kind() == kind::tuple)) {
        const auto &x = a.as_sequence(), &y = b.as_sequence();
        const auto [i, j] = std::mismatch(x.begin(), x.end(), y.begin(), y.end(), py_eq);
        if (i == x.end() || j == y.end()) return x.size() < y.size();
        return py_less(*i, *j);
    }
    not_supported(a, b);
}

}  // namespace mp::detail
