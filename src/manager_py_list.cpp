// A Python list as a manager server serves it to Python clients (ListProxy's methods), and
// mp::PyList, the C++ side of such a list.
#include <algorithm>
#include <stdexcept>

#include "manager_py.hpp"
#include "multiproc/manager_python.hpp"

namespace mp::detail {

namespace {

using py::kind;
using py::object;

// Python's ordering of two numbers or two strs (sort); TypeError for other pairs.
bool less(const object& a, const object& b) {
    const auto number = [](const object& o) {
        return o.kind() == kind::integer || o.kind() == kind::floating || o.kind() == kind::boolean;
    };
    if (number(a) && number(b)) return a.as_float() < b.as_float();
    if (a.kind() == kind::str && b.kind() == kind::str) return a.as_str() < b.as_str();
    py_raise("TypeError",
             {"'<' not supported between instances of '" + std::string(py::kind_name(a.kind())) +
              "' and '" + std::string(py::kind_name(b.kind())) + "'"});
}

// Python's (start, stop) of slice(start, stop, None) over n items; ValueError for a step.
std::pair<std::size_t, std::size_t> slice_range(const object& s, std::size_t n) {
    const auto& args = s.node<py::instance>()->args->items;
    if (args.size() != 3 || !args[2].is_none())
        py_raise("ValueError", {"only slices without a step are supported"});
    const auto bound = [&](const object& o, std::int64_t otherwise) {
        std::int64_t i = o.is_none() ? otherwise : o.as_int();
        if (i < 0) i += static_cast<std::int64_t>(n);
        return static_cast<std::size_t>(std::clamp<std::int64_t>(i, 0,
                                                                 static_cast<std::int64_t>(n)));
    };
    const std::size_t start = bound(args[0], 0);
    return {start, std::max(start, bound(args[1], static_cast<std::int64_t>(n)))};
}

bool is_slice(const object& o) {
    const auto* i = std::get_if<std::shared_ptr<py::instance>>(&o.value());
    return i && (*i)->cls.module == "builtins" && (*i)->cls.name == "slice";
}

}  // namespace

class PyListState final : public PyServed {
public:
    [[nodiscard]] std::string_view type_name() const override { return "list"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {
            "__add__",  "__contains__", "__delitem__", "__getitem__", "__len__", "__mul__",
            "__rmul__", "__setitem__",  "append",      "count",       "extend",  "index",
            "insert",   "pop",          "remove",      "reverse",     "sort",    "__imul__"};
        return kExposed;
    }
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return py::make_list(items_);
    }

    // The index i (negative from the end); IndexError beyond.
    std::size_t index(const object& i, bool insert = false) const {
        std::int64_t k = i.as_int();
        const auto n = static_cast<std::int64_t>(items_.size());
        if (k < 0) k += n;
        if (insert) return static_cast<std::size_t>(std::clamp<std::int64_t>(k, 0, n));
        if (k < 0 || k >= n) py_raise("IndexError", {"list index out of range"});
        return static_cast<std::size_t>(k);
    }

    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        std::lock_guard lk(m_);
        if (m == "__len__") return object(static_cast<std::int64_t>(items_.size()));
        if (m == "__getitem__" || m == "__delitem__") {
            const object& i = a.at(0, "index");
            if (is_slice(i)) {
                const auto [b, e] = slice_range(i, items_.size());
                if (m == "__delitem__") items_.erase(items_.begin() + b, items_.begin() + e);
                else return py::make_list({items_.begin() + b, items_.begin() + e});
                return object();
            }
            const std::size_t k = index(i);
            if (m == "__getitem__") return items_[k];
            items_.erase(items_.begin() + k);
            return object();
        }
        if (m == "__setitem__") {
            items_[index(a.at(0, "index"))] = a.at(1, "value");
            return object();
        }
        if (m == "append") items_.push_back(a.at(0, "object"));
        if (m == "extend" || m == "__add__") {
            const object& o = a.at(0, "iterable");
            const auto& more =
                o.kind() == kind::set || o.kind() == kind::frozenset ? o.as_set() : o.as_sequence();
            if (m == "__add__") {
                std::vector<object> sum = items_;
                sum.insert(sum.end(), more.begin(), more.end());
                return py::make_list(std::move(sum));
            }
            items_.insert(items_.end(), more.begin(), more.end());
        }
        if (m == "__mul__" || m == "__rmul__" || m == "__imul__") {
            std::vector<object> out;
            for (std::int64_t r = a.at(0, "value").as_int(); r > 0; --r)
                out.insert(out.end(), items_.begin(), items_.end());
            if (m != "__imul__") return py::make_list(std::move(out));
            items_ = std::move(out);
        }
        if (m == "insert")
            items_.insert(items_.begin() + index(a.at(0, "index"), true), a.at(1, "object"));
        if (m == "pop") {
            if (items_.empty()) py_raise("IndexError", {"pop from empty list"});
            const std::size_t k = index(a.get(0, "index", object(-1)));
            object v = items_[k];
            items_.erase(items_.begin() + k);
            return v;
        }
        if (m == "__contains__" || m == "count" || m == "index" || m == "remove") {
            const object& v = a.at(0, "value");
            const auto it = std::find(items_.begin(), items_.end(), v);
            if (m == "__contains__") return object(it != items_.end());
            if (m == "count")
                return object(static_cast<std::int64_t>(std::count(items_.begin(), items_.end(),
                                                                   v)));
            if (it == items_.end()) py_raise("ValueError", {"list.index(x): x not in list"});
            if (m == "index") return object(static_cast<std::int64_t>(it - items_.begin()));
            items_.erase(it);
        }
        if (m == "reverse") std::reverse(items_.begin(), items_.end());
        if (m == "sort") {
            if (!a.keywords().empty() || !a.positional().empty())
                py_raise("TypeError", {"sort() with key or reverse is not supported"});
            std::stable_sort(items_.begin(), items_.end(), less);
        }
        return object();
    }

    mutable std::mutex m_;
    std::vector<object> items_;
};

std::shared_ptr<PyServed> make_py_list(const PyArgs& args) {
    args.at_most(1);
    auto l = std::make_shared<PyListState>();
    if (!args.positional().empty()) {
        const object& o = args.positional()[0];
        l->items_ =
            o.kind() == kind::set || o.kind() == kind::frozenset ? o.as_set() : o.as_sequence();
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
