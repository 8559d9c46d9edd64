// A Python dict and a Namespace as a manager server serves them to Python clients (DictProxy's
// methods; NamespaceProxy's attribute access), and mp::PyDict, the C++ side of such a dict.
//
// Keys are found by a byte string made from the key: equal for keys Python finds equal in the
// common cases (1, 1.0 and True are one key; a str, bytes, None; tuples by their pickle).
#include <algorithm>
#include <cstring>
#include <list>
#include <stdexcept>

#include "manager_py.hpp"
#include "multiproc/manager_python.hpp"
#include "multiproc/pickle.hpp"

namespace mp::detail {

namespace {

using py::kind;
using py::object;

std::string int_key(std::int64_t i) {
    std::string k(9, 'i');
    std::memcpy(k.data() + 1, &i, 8);
    return k;
}

// The lookup key of a Python key; TypeError for an unhashable one, as Python's.
std::string key_of(const object& o) {
    switch (o.kind()) {
        case kind::none: return "N";
        case kind::boolean:
        case kind::integer: return int_key(o.as_int());
        case kind::floating: {
            const double d = o.as_float();
            if (d == static_cast<double>(static_cast<std::int64_t>(d)) && d > -9.2e18 && d < 9.2e18)
                return int_key(static_cast<std::int64_t>(d));
            std::string k(9, 'f');
            std::memcpy(k.data() + 1, &d, 8);
            return k;
        }
        case kind::str: return "s" + o.as_str();
        case kind::bytes: {
            const auto& b = o.as_bytes();
            return "b" + std::string(reinterpret_cast<const char*>(b.data()), b.size());
        }
        case kind::list:
        case kind::dict:
        case kind::set:
        case kind::bytearray:
            py_raise("TypeError",
                     {"unhashable type: '" + std::string(py::kind_name(o.kind())) + "'"});
        case kind::tuple: {
            std::string k = "t";
            for (const object& item : o.as_sequence()) {
                const std::string part = key_of(item);
                const std::uint64_t n = part.size();
                k.append(reinterpret_cast<const char*>(&n), 8);
                k += part;
            }
            return k;
        }
        default: {
            // A pickle of a copy: the writer's memo depends on how shared the nodes are.
            const auto p = pickle::dumps(pickle::loads(pickle::dumps(o)));
            return "p" + std::string(reinterpret_cast<const char*>(p.data()), p.size());
        }
    }
}

}  // namespace

// The entries in insertion order, and an index by key.
class PyTable {
public:
    using Entries = std::list<std::pair<object, object>>;

    object* find(const object& k) {
        auto it = index_.find(key_of(k));
        return it == index_.end() ? nullptr : &it->second->second;
    }
    void set(object k, object v) {
        auto [slot, fresh] = index_.try_emplace(key_of(k));
        if (fresh) slot->second = entries_.emplace(entries_.end(), std::move(k), std::move(v));
        else slot->second->second = std::move(v);
    }
    std::optional<object> erase(const object& k) {
        auto it = index_.find(key_of(k));
        if (it == index_.end()) return std::nullopt;
        object v = std::move(it->second->second);
        entries_.erase(it->second);
        index_.erase(it);
        return v;
    }
    void clear() {
        index_.clear();
        entries_.clear();
    }
    [[nodiscard]] const Entries& entries() const { return entries_; }
    [[nodiscard]] object copy() const {
        return py::make_dict(std::vector<std::pair<object, object>>(entries_.begin(),
                                                                    entries_.end()));
    }

private:
    Entries entries_;
    std::unordered_map<std::string, Entries::iterator> index_;
};

class PyDictState final : public PyServed, public std::enable_shared_from_this<PyDictState> {
public:
    [[nodiscard]] std::string_view type_name() const override { return "dict"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {
            "__contains__", "__delitem__", "__getitem__", "__iter__", "__len__", "__setitem__",
            "clear",        "copy",        "get",         "items",    "keys",    "pop",
            "popitem",      "setdefault",  "update",      "values"};
        return kExposed;
    }
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return t_.copy();
    }

    object call(std::string_view m, const PyArgs& a, const PyCallContext& ctx) override {
        std::lock_guard lk(m_);
        if (m == "__iter__") {
            a.at_most(0);
            ctx.proxied = PyProxied{iterator(), "Iterator"};
            return object();
        }
        if (m == "__getitem__") {
            a.at_most(1);
            const object& k = a.at(0, "key");
            if (object* v = t_.find(k)) return *v;
            py_raise("KeyError", {k});
        }
        if (m == "__setitem__") {
            a.at_most(2);
            t_.set(a.at(0, "key"), a.at(1, "value"));
            return object();
        }
        if (m == "get") {
            a.at_most(2);
            const object* v = t_.find(a.at(0, "key"));
            return v ? *v : a.get(1, "default", object());
        }
        if (m == "__contains__") return object(t_.find(a.at(0, "key")) != nullptr);
        if (m == "__len__") return object(static_cast<std::int64_t>(t_.entries().size()));
        if (m == "__delitem__" || m == "pop") {
            a.at_most(m == "pop" ? 2 : 1);
            const object& k = a.at(0, "key");
            if (auto v = t_.erase(k)) return m == "pop" ? *v : object();
            if (m == "pop" && a.positional().size() > 1) return a.positional()[1];
            py_raise("KeyError", {k});
        }
        if (m == "setdefault") {
            a.at_most(2);
            if (object* v = t_.find(a.at(0, "key"))) return *v;
            object d = a.get(1, "default", object());
            t_.set(a.at(0, "key"), d);
            return d;
        }
        if (m == "update") return update(a);
        a.at_most(0);
        if (m == "clear") t_.clear();
        if (m == "copy") return t_.copy();
        if (m == "popitem") {
            if (t_.entries().empty()) py_raise("KeyError", {"popitem(): dictionary is empty"});
            auto kv = t_.entries().back();
            t_.erase(kv.first);
            return py::make_tuple({kv.first, kv.second});
        }
        if (m == "keys" || m == "values" || m == "items") {
            std::vector<object> out;
            out.reserve(t_.entries().size());
            for (const auto& [k, v] : t_.entries())
                out.push_back(m == "keys" ? k : m == "values" ? v : py::make_tuple({k, v}));
            return py::make_list(std::move(out));
        }
        return object();  // clear
    }

    // An iterator over the keys as they are now; it fails once the dict changes size, as
    // Python's does ("dictionary changed size during iteration").
    std::shared_ptr<PyServed> iterator() {
        std::vector<object> keys;
        keys.reserve(t_.entries().size());
        for (const auto& kv : t_.entries()) keys.push_back(kv.first);
        const std::size_t n = keys.size();
        return make_py_iterator(std::move(keys), [self = shared_from_this(), n] {
            std::lock_guard lk(self->m_);
            return self->t_.entries().size() != n;
        });
    }

    // Python's dict.update(E, **kw): E a dict or pairs.
    object update(const PyArgs& a) {
        if (a.positional().size() > 1)
            py_raise("TypeError", {"update expected at most 1 argument"});
        if (!a.positional().empty()) {
            const object& e = a.positional()[0];
            if (e.kind() == kind::dict) {
                for (const auto& [k, v] : e.as_dict()) t_.set(k, v);
            } else if (e.kind() == kind::list || e.kind() == kind::tuple) {
                for (const auto& kv : e.as_sequence()) {
                    if ((kv.kind() != kind::tuple && kv.kind() != kind::list) ||
                        kv.as_sequence().size() != 2)
                        py_raise("ValueError", {"dictionary update sequence element has the wrong "
                                                "length or is not a sequence"});
                    t_.set(kv.as_sequence()[0], kv.as_sequence()[1]);
                }
            } else {
                py_raise("TypeError",
                         {"'" + std::string(py::kind_name(e.kind())) + "' object is not iterable"});
            }
        }
        for (const auto& [k, v] : a.keywords()) t_.set(k, v);
        return object();
    }

    mutable std::mutex m_;
    PyTable t_;
};

class PyNamespaceState final : public PyServed {
public:
    [[nodiscard]] std::string_view type_name() const override { return "Namespace"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {"__getattribute__", "__setattr__",
                                                        "__delattr__"};
        return kExposed;
    }
    // multiprocessing.managers.Namespace() with the attributes as its state.
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return object(std::make_shared<py::instance>(
            py::instance{{"multiprocessing.managers", "Namespace"},
                         std::make_shared<py::tuple>(),
                         std::make_shared<const object>(t_.copy())}));
    }
    // Python's Namespace.__repr__: the public attributes, sorted.
    [[nodiscard]] std::string repr() const override {
        std::vector<std::string> parts;
        {
            std::lock_guard lk(m_);
            for (const auto& [k, v] : t_.entries())
                if (k.kind() == kind::str && k.as_str().rfind('_', 0) != 0)
                    parts.push_back(k.as_str() + "=" + py_repr(v));
        }
        std::sort(parts.begin(), parts.end());
        std::string out = "Namespace(";
        for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
        return out + ")";
    }
    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        std::lock_guard lk(m_);
        a.at_most(m == "__setattr__" ? 2 : 1);
        const object& name = a.at(0, "name");
        if (name.kind() != kind::str) py_raise("TypeError", {"attribute name must be string"});
        if (m == "__setattr__") {
            t_.set(name, a.at(1, "value"));
            return object();
        }
        if (object* v = t_.find(name)) return m == "__delattr__" ? (t_.erase(name), object()) : *v;
        py_raise("AttributeError", {"'Namespace' object has no attribute '" + name.as_str() + "'"});
    }
    void set(object k, object v) {
        std::lock_guard lk(m_);
        t_.set(std::move(k), std::move(v));
    }

private:
    mutable std::mutex m_;
    PyTable t_;
};

std::shared_ptr<PyServed> make_py_dict(const PyArgs& args) {
    auto d = std::make_shared<PyDictState>();
    d->update(args);
    return d;
}

std::shared_ptr<PyServed> make_py_namespace(const PyArgs& args) {
    if (!args.positional().empty()) py_raise("TypeError", {"Namespace takes keywords only"});
    auto ns = std::make_shared<PyNamespaceState>();
    for (const auto& [k, v] : args.keywords()) ns->set(k, v);
    return ns;
}

}  // namespace mp::detail

namespace mp {

namespace {
detail::PyDictState& state(const std::shared_ptr<detail::PyServed>& s) {
    return static_cast<detail::PyDictState&>(*s);
}
}  // namespace

PyDict::PyDict() : PyShared(std::make_shared<detail::PyDictState>()) {}

void PyDict::set_object(py::object key, py::object value) {
    auto& d = state(s_);
    std::lock_guard lk(d.m_);
    d.t_.set(std::move(key), std::move(value));
}

std::optional<py::object> PyDict::find_object(const py::object& key) const {
    auto& d = state(s_);
    std::lock_guard lk(d.m_);
    const py::object* v = d.t_.find(key);
    return v ? std::optional<py::object>(*v) : std::nullopt;
}

bool PyDict::erase_object(const py::object& key) {
    auto& d = state(s_);
    std::lock_guard lk(d.m_);
    return d.t_.erase(key).has_value();
}

std::size_t PyDict::size() const {
    auto& d = state(s_);
    std::lock_guard lk(d.m_);
    return d.t_.entries().size();
}

py::object PyDict::copy_object() const { return s_->value(); }

}  // namespace mp
