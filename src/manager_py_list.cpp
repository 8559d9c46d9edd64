// A Python list as a manager server serves it to Python clients (ListProxy's methods, with
// Python's index and slice rules), and mp::PyList, the C++ side of such a list.
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "manager_py.hpp"
#include "multiproc/manager_python.hpp"

namespace mp::detail {

namespace {

using py::kind;
using py::object;

// The most items one call may build (`l * n`, the characters of a str): beyond it Python's
// MemoryError, not an attempt.
constexpr std::size_t kMaxBuilt = std::size_t{1} << 22;

[[noreturn]] void too_many() {
    py_raise("MemoryError", {"a multiproc manager server builds at most 2**22 items in one call"});
}
// Python clamps slice bounds beyond the machine's index range; these stay clear of overflow.
constexpr std::int64_t kHuge = std::numeric_limits<std::int64_t>::max() / 4;

bool is_int(const object& o) {
    return o.kind() == kind::integer || o.kind() == kind::boolean || o.kind() == kind::big_integer;
}

bool below_zero(const object& big) {
    const auto& le = big.node<const py::bigint>()->le;
    return !le.empty() && (std::to_integer<unsigned>(le.back()) & 0x80U) != 0;
}

// The code points of UTF-8 text, each a str (Python iterates a str by them).
std::vector<object> characters(const std::string& s) {
    std::vector<object> out;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t j = i + 1;
        while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xc0U) == 0x80U) ++j;
        out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

// The items Python's iteration of o yields; TypeError `not_iterable` for what is not iterable.
std::vector<object> items_of(const object& o, const std::string& not_iterable) {
    switch (o.kind()) {
        case kind::list:
        case kind::tuple: return o.as_sequence();
        case kind::set:
        case kind::frozenset: return o.as_set();
        case kind::str:
            if (o.as_str().size() > kMaxBuilt) too_many();
            return characters(o.as_str());
        case kind::bytes:
        case kind::bytearray: {
            if (o.as_bytes().size() > kMaxBuilt) too_many();
            std::vector<object> out;
            for (const std::byte b : o.as_bytes())
                out.emplace_back(static_cast<std::int64_t>(std::to_integer<unsigned>(b)));
            return out;
        }
        case kind::dict: {
            std::vector<object> keys;
            for (const auto& kv : o.as_dict()) keys.push_back(kv.first);
            return keys;
        }
        default: py_raise("TypeError", {not_iterable});
    }
}

std::string not_iterable(const object& o) {
    return "'" + std::string(py::kind_name(o.kind())) + "' object is not iterable";
}

// How many times `l * n` repeats l (0 for n <= 0): TypeError, OverflowError as Python's.
std::int64_t repeats(const object& n) {
    if (n.kind() == kind::big_integer)
        py_raise("OverflowError", {"cannot fit 'int' into an index-sized integer"});
    if (!is_int(n))
        py_raise("TypeError", {"can't multiply sequence by non-int of type '" +
                               std::string(py::kind_name(n.kind())) + "'"});
    return std::max<std::int64_t>(n.as_int(), 0);
}

}  // namespace

bool is_slice(const object& o) {
    const auto* i = std::get_if<std::shared_ptr<py::instance>>(&o.value());
    return i && (*i)->cls.module == "builtins" && (*i)->cls.name == "slice" && (*i)->args &&
           (*i)->args->items.size() == 3;
}

PySlice py_slice_of(const object& s, std::size_t size) {
    const auto& args = s.node<py::instance>()->args->items;
    const auto bound = [](const object& o, std::int64_t otherwise) {
        if (o.is_none()) return otherwise;
        if (o.kind() == kind::big_integer) return below_zero(o) ? -kHuge : kHuge;
        if (!is_int(o))
            py_raise("TypeError",
                     {"slice indices must be integers or None or have an __index__ method"});
        return std::clamp(o.as_int(), -kHuge, kHuge);
    };
    PySlice r;
    r.step = bound(args[2], 1);
    if (r.step == 0) py_raise("ValueError", {"slice step cannot be zero"});
    const auto n = static_cast<std::int64_t>(size);
    const bool back = r.step < 0;
    const auto adjust = [&](std::int64_t i) {
        if (i < 0) return i + n < 0 ? (back ? -1 : 0) : i + n;
        return i >= n ? (back ? n - 1 : n) : i;
    };
    r.start = adjust(bound(args[0], back ? kHuge : 0));
    const std::int64_t stop = adjust(bound(args[1], back ? -kHuge : kHuge));
    if (back ? stop < r.start : r.start < stop)
        r.length = back ? (r.start - stop - 1) / -r.step + 1 : (stop - r.start - 1) / r.step + 1;
    return r;
}

class PyListState final : public PyServed {
public:
    [[nodiscard]] std::string_view type_name() const override { return "list"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {
            "__add__", "__contains__", "__delitem__", "__getitem__", "__len__",
            "__mul__", "__reversed__", "__rmul__",    "__setitem__", "append",
            "count",   "extend",       "index",       "insert",      "pop",
            "remove",  "reverse",      "sort",        "__imul__"};
        return kExposed;
    }
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return py::make_list(items_);
    }

    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        std::lock_guard lk(m_);
        if (m == "__getitem__" || m == "__setitem__" || m == "__delitem__") return item(m, a);
        if (m == "sort") return sort(a);
        if (m == "index") return index_of(a);
        if (m == "insert") {
            a.at_most(2);
            const std::int64_t n = size(), i = position(a.at(0, "index"));
            items_.insert(items_.begin() + std::clamp(i < 0 ? i + n : i, std::int64_t{0}, n),
                          a.at(1, "object"));
            return object();
        }
        if (m == "pop") {
            a.at_most(1);
            if (items_.empty()) py_raise("IndexError", {"pop from empty list"});
            const std::size_t k =
                existing(position(a.get(0, "index", object(-1))), "pop index out of range");
            object v = std::move(items_[k]);
            items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(k));
            return v;
        }
        a.at_most(m == "__len__" || m == "reverse" || m == "__reversed__" ? 0 : 1);
        if (m == "__len__") return object(size());
        if (m == "reverse") std::reverse(items_.begin(), items_.end());
        if (m == "__reversed__") return reversed();
        if (m == "append") items_.push_back(a.at(0, "object"));
        if (m == "extend") {
            const object& o = a.at(0, "iterable");
            auto more = items_of(o, not_iterable(o));
            items_.insert(items_.end(), more.begin(), more.end());
        }
        if (m == "__add__") {
            const object& o = a.at(0, "value");
            if (o.kind() != kind::list)
                py_raise("TypeError", {"can only concatenate list (not \"" +
                                       std::string(py::kind_name(o.kind())) + "\") to list"});
            std::vector<object> sum = items_;
            sum.insert(sum.end(), o.as_sequence().begin(), o.as_sequence().end());
            return py::make_list(std::move(sum));
        }
        if (m == "__mul__" || m == "__rmul__" || m == "__imul__") {
            const std::int64_t r = items_.empty() ? 0 : repeats(a.at(0, "value"));
            if (!items_.empty() && static_cast<std::uint64_t>(r) > kMaxBuilt / items_.size())
                too_many();
            std::vector<object> out;
            out.reserve(items_.size() * static_cast<std::size_t>(r));
            for (std::int64_t k = 0; k < r; ++k)
                out.insert(out.end(), items_.begin(), items_.end());
            if (m != "__imul__") return py::make_list(std::move(out));
            items_ = std::move(out);
        }
        if (m == "__contains__" || m == "count" || m == "remove") {
            const object& v = a.at(0, "value");
            const auto same = [&](const object& x) { return py_eq(x, v); };
            if (m == "count")
                return object(static_cast<std::int64_t>(std::count_if(items_.begin(), items_.end(),
                                                                      same)));
            const auto it = std::find_if(items_.begin(), items_.end(), same);
            if (m == "__contains__") return object(it != items_.end());
            if (it == items_.end()) py_raise("ValueError", {"list.remove(x): x not in list"});
            items_.erase(it);
        }
        return object();
    }

    mutable std::mutex m_;
    std::vector<object> items_;

private:
    [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(items_.size()); }

    // An int index as given (IndexError for one beyond int64, TypeError for a non-int).
    static std::int64_t position(const object& i) {
        if (i.kind() == kind::big_integer)
            py_raise("IndexError", {"cannot fit 'int' into an index-sized integer"});
        if (!is_int(i))
            py_raise("TypeError", {"list indices must be integers or slices, not " +
                                   std::string(py::kind_name(i.kind()))});
        return i.as_int();
    }

    // The item at i (negative from the end); IndexError(`beyond`) when there is none.
    [[nodiscard]] std::size_t existing(std::int64_t i, const char* beyond) const {
        if (i < 0) i += size();
        if (i < 0 || i >= size()) py_raise("IndexError", {beyond});
        return static_cast<std::size_t>(i);
    }

    // l[i], l[i] = v, del l[i], with i an int or a slice (with any step).
    object item(std::string_view m, const PyArgs& a) {
        a.at_most(m == "__setitem__" ? 2 : 1);
        const object& i = a.at(0, "index");
        if (!is_slice(i)) {
            const char* beyond = m == "__getitem__" ? "list index out of range"
                                                    : "list assignment index out of range";
            const std::size_t k = existing(position(i), beyond);
            if (m == "__getitem__") return items_[k];
            if (m == "__setitem__") items_[k] = a.at(1, "value");
            else items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(k));
            return object();
        }
        const PySlice s = py_slice_of(i, items_.size());
        if (m == "__getitem__") {
            std::vector<object> out;
            out.reserve(static_cast<std::size_t>(s.length));
            for (std::int64_t k = 0; k < s.length; ++k) out.push_back(items_[s.at(k)]);
            return py::make_list(std::move(out));
        }
        std::vector<bool> selected(items_.size());
        for (std::int64_t k = 0; k < s.length; ++k) selected[s.at(k)] = true;
        if (m == "__setitem__") {
            auto v =
                items_of(a.at(1, "value"), s.step == 1 ? "can only assign an iterable"
                                                       : "must assign iterable to extended slice");
            if (s.step != 1) {
                if (static_cast<std::int64_t>(v.size()) != s.length)
                    py_raise("ValueError",
                             {"attempt to assign sequence of size " + std::to_string(v.size()) +
                              " to extended slice of size " + std::to_string(s.length)});
                for (std::int64_t k = 0; k < s.length; ++k) items_[s.at(k)] = std::move(v[k]);
                return object();
            }
            const auto at = items_.begin() + s.start;
            items_.erase(at, at + s.length);
            items_.insert(items_.begin() + s.start, v.begin(), v.end());
            return object();
        }
        std::size_t kept = 0;
        for (std::size_t k = 0; k < items_.size(); ++k)
            if (!selected[k]) items_[kept++] = std::move(items_[k]);
        items_.resize(kept);
        return object();
    }

    // l.index(value[, start[, stop]]): start and stop as a slice's.
    object index_of(const PyArgs& a) {
        a.at_most(3);
        const object& v = a.at(0, "value");
        const auto bound = [&](std::size_t k, std::int64_t otherwise) {
            const object b = a.get(k, k == 1 ? "start" : "stop", object(otherwise));
            std::int64_t i = b.kind() == kind::big_integer ? (below_zero(b) ? -kHuge : kHuge)
                                                           : std::clamp(position(b), -kHuge, kHuge);
            if (i < 0) i = std::max<std::int64_t>(i + size(), 0);
            return std::min(i, size());
        };
        const std::int64_t start = bound(1, 0), stop = bound(2, size());
        for (std::int64_t k = start; k < stop; ++k)
            if (py_eq(items_[static_cast<std::size_t>(k)], v)) return object(k);
        py_raise("ValueError", {py_repr(v) + " is not in list"});
    }

    // l.sort(*, key=None, reverse=False): key must be None (a Python function cannot run here).
    object sort(const PyArgs& a) {
        if (!a.positional().empty())
            py_raise("TypeError", {"sort() takes no positional arguments"});
        bool reverse = false;
        for (const auto& [k, v] : a.keywords()) {
            const std::string name = k.kind() == kind::str ? k.as_str() : "";
            if (name == "reverse") {
                reverse = py_truth(v);  // Python 3.12's rule (3.11 took ints only)
            } else if (name == "key") {
                if (v.kind() == kind::global)
                    py_raise("NotImplementedError",
                             {"a multiproc manager server cannot call Python functions: "
                              "sort(key=...) needs key=None (sort a copy with _getvalue())"});
                if (!v.is_none() && !items_.empty())
                    py_raise("TypeError", {"'" + std::string(py::kind_name(v.kind())) +
                                           "' object is not callable"});
            } else {
                py_raise("TypeError", {"'" + name + "' is an invalid keyword argument for sort()"});
            }
        }
        std::vector<object> sorted = items_;  // a failed comparison leaves the list as it was
        std::stable_sort(sorted.begin(), sorted.end(), [&](const object& x, const object& y) {
            return reverse ? py_less(y, x) : py_less(x, y);
        });
        items_ = std::move(sorted);
        return object();
    }

    // reversed(l) as Python pickles it: reversed(copy) set to start at the last item.
    [[nodiscard]] object reversed() const {
        return object(std::make_shared<py::instance>(
            py::instance{{"builtins", "reversed"},
                         std::make_shared<py::tuple>(py::tuple{{py::make_list(items_)}}),
                         std::make_shared<const object>(object(size() - 1))}));
    }
};

std::shared_ptr<PyServed> make_py_list(const PyArgs& args) {
    args.at_most(1);
    auto l = std::make_shared<PyListState>();
    if (!args.positional().empty()) {
        const object& o = args.positional()[0];
        l->items_ = items_of(o, not_iterable(o));
    }
    return l;
}

}  // namespace mp::detail

namespace mp {

namespace {
detail::PyListState& state(const std::shared_ptr<detail::PyServed>& s) {
    return static_cast<detail::PyListState&>(*s);
}
}  // namespace

PyList::PyList() : PyShared(std::make_shared<detail::PyListState>()) {}

void PyList::append_object(py::object value) {
    auto& l = state(s_);
    std::lock_guard lk(l.m_);
    l.items_.push_back(std::move(value));
}

py::object PyList::get_object(std::ptrdiff_t i) const {
    auto& l = state(s_);
    std::lock_guard lk(l.m_);
    const auto n = static_cast<std::ptrdiff_t>(l.items_.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw std::out_of_range("multiproc: PyList index out of range");
    return l.items_[static_cast<std::size_t>(i)];
}

std::size_t PyList::size() const {
    auto& l = state(s_);
    std::lock_guard lk(l.m_);
    return l.items_.size();
}

py::object PyList::copy_object() const { return s_->value(); }

}  // namespace mp
