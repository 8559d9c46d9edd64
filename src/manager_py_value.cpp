// Python's multiprocessing.managers.Value and Array as a manager server serves them to Python
// clients (SyncManager's Value and Array: a ValueProxy's get/set, an ArrayProxy's len, [i] and
// [slice]). An Array holds numbers of its typecode, checked as array.array checks them.
#include <cstring>
#include <limits>

#include "manager_py.hpp"

namespace mp::detail {

namespace {

using py::kind;
using py::object;

object instance_of(std::string module, std::string name, std::vector<object> args) {
    return object(std::make_shared<py::instance>(py::instance{{std::move(module), std::move(name)},
                                                              std::make_shared<py::tuple>(py::tuple{
                                                                  std::move(args)}),
                                                              nullptr}));
}

class PyValueState final : public PyServed {
public:
    PyValueState(object typecode, object v) : typecode_(std::move(typecode)), v_(std::move(v)) {}
    [[nodiscard]] std::string_view type_name() const override { return "Value"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {"get", "set"};
        return kExposed;
    }
    // Value(typecode, value), as Python's server sends one.
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return instance_of("multiprocessing.managers", "Value", {typecode_, v_});
    }
    [[nodiscard]] std::string repr() const override {
        std::lock_guard lk(m_);
        return "Value(" + py_repr(typecode_) + ", " + py_repr(v_) + ")";
    }
    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        std::lock_guard lk(m_);
        a.at_most(m == "set" ? 1 : 0);
        if (m == "get") return v_;
        v_ = a.at(0, "value");
        return object();
    }

private:
    mutable std::mutex m_;
    object typecode_, v_;
};

// An array.array typecode: its item size, and for ints the range.
struct Typecode {
    char code;
    std::size_t size;
    bool floating, is_signed;
};

constexpr Typecode kTypecodes[] = {{'b', 1, false, true}, {'B', 1, false, false},
                                   {'h', 2, false, true}, {'H', 2, false, false},
                                   {'i', 4, false, true}, {'I', 4, false, false},
                                   {'l', 8, false, true}, {'L', 8, false, false},
                                   {'q', 8, false, true}, {'Q', 8, false, false},
                                   {'f', 4, true, true},  {'d', 8, true, true}};

const Typecode& typecode_of(const object& o) {
    if (o.kind() != kind::str || o.as_str().size() != 1)
        py_raise("TypeError", {"array() argument 1 must be a unicode character"});
    const char c = o.as_str()[0];
    for (const Typecode& t : kTypecodes)
        if (t.code == c) return t;
    if (c == 'u' || c == 'w')
        py_raise("NotImplementedError",
                 {"a multiproc manager server holds numeric arrays only (typecode 'u' or 'w')"});
    py_raise("ValueError", {"bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)"});
}

class PyArrayState final : public PyServed {
public:
    PyArrayState(const Typecode& t, std::vector<object> items) : t_(t) {
        items_.reserve(items.size());
        for (const object& v : items) items_.push_back(checked(v));
    }
    PyArrayState(const Typecode& t, const std::vector<std::byte>& raw) : t_(t) {
        if (raw.size() % t.size != 0)
            py_raise("ValueError", {"bytes length not a multiple of item size"});
        for (std::size_t at = 0; at < raw.size(); at += t.size) items_.push_back(unpack(&raw[at]));
    }

    [[nodiscard]] std::string_view type_name() const override { return "array.array"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {"__len__", "__getitem__", "__setitem__"};
        return kExposed;
    }
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        return array(items_);
    }
    [[nodiscard]] std::string repr() const override {
        std::lock_guard lk(m_);
        std::string out = "array('" + std::string(1, t_.code) + "'";
        if (!items_.empty()) out += ", " + py_repr(py::make_list(items_));
        return out + ")";
    }

    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        std::lock_guard lk(m_);
        a.at_most(m == "__setitem__" ? 2 : m == "__getitem__" ? 1 : 0);
        if (m == "__len__") return object(static_cast<std::int64_t>(items_.size()));
        const object& i = a.at(0, "index");
        if (is_slice(i)) {
            if (m == "__setitem__")  // an array.array value never decodes here (plain data only)
                py_raise("TypeError", {"can only assign array (not \"" +
                                       std::string(py::kind_name(a.at(1, "value").kind())) +
                                       "\") to array slice"});
            const PySlice s = py_slice_of(i, items_.size());
            std::vector<object> out;
            for (std::int64_t k = 0; k < s.length; ++k) out.push_back(items_[s.at(k)]);
            return array(out);
        }
        if (i.kind() != kind::integer && i.kind() != kind::boolean)
            py_raise(i.kind() == kind::big_integer ? "IndexError" : "TypeError",
                     {"array indices must be integers"});
        std::int64_t k = i.as_int();
        const auto n = static_cast<std::int64_t>(items_.size());
        if (k < 0) k += n;
        if (k < 0 || k >= n)
            py_raise("IndexError", {m == "__getitem__" ? "array index out of range"
                                                       : "array assignment index out of range"});
        if (m == "__getitem__") return items_[static_cast<std::size_t>(k)];
        items_[static_cast<std::size_t>(k)] = checked(a.at(1, "value"));
        return object();
    }

private:
    // v as an item: TypeError for a non-number, OverflowError beyond the typecode's range.
    [[nodiscard]] object checked(const object& v) const {
        const bool is_int = v.kind() == kind::integer || v.kind() == kind::boolean;
        if (t_.floating) {
            if (!is_int && v.kind() != kind::floating)
                py_raise("TypeError",
                         {"must be real number, not " + std::string(py::kind_name(v.kind()))});
            const double d =
                v.kind() == kind::boolean ? static_cast<double>(v.as_int()) : v.as_float();
            return object(t_.size == 4 ? static_cast<double>(static_cast<float>(d)) : d);
        }
        if (v.kind() == kind::big_integer) {  // fits only an unsigned 64-bit item
            const auto& le = v.node<const py::bigint>()->le;
            const bool fits =
                !t_.is_signed && t_.size == 8 && le.size() == 9 && le[8] == std::byte{0};
            if (!fits) py_raise("OverflowError", {"array item out of range"});
            return v;
        }
        if (!is_int)
            py_raise("TypeError", {"'" + std::string(py::kind_name(v.kind())) +
                                   "' object cannot be interpreted as an integer"});
        const std::int64_t x = v.as_int();
        const int bits = static_cast<int>(8 * t_.size);
        const bool fits = t_.is_signed ? bits == 64 || (x >= -(std::int64_t{1} << (bits - 1)) &&
                                                        x < (std::int64_t{1} << (bits - 1)))
                                       : x >= 0 && (bits == 64 || x < (std::int64_t{1} << bits));
        if (!fits) py_raise("OverflowError", {"array item out of range"});
        return object(x);
    }

    [[nodiscard]] object unpack(const std::byte* p) const {
        if (t_.floating) {
            if (t_.size == 4) {
                float f;
                std::memcpy(&f, p, 4);
                return object(static_cast<double>(f));
            }
            double d;
            std::memcpy(&d, p, 8);
            return object(d);
        }
        std::uint64_t u = 0;
        std::memcpy(&u, p, t_.size);  // little-endian
        const int bits = static_cast<int>(8 * t_.size);
        if (t_.is_signed && bits < 64 && (u >> (bits - 1)) != 0) u |= ~std::uint64_t{0} << bits;
        if (!t_.is_signed && bits == 64 && u > std::numeric_limits<std::int64_t>::max())
            return object(py::bigint::from_unsigned(u));
        return object(static_cast<std::int64_t>(u));
    }

    // array.array(typecode, raw bytes), as multiprocessing pickles an array.
    [[nodiscard]] object array(const std::vector<object>& items) const {
        std::vector<std::byte> raw(items.size() * t_.size);
        for (std::size_t k = 0; k < items.size(); ++k) {
            std::byte* p = raw.data() + k * t_.size;
            if (t_.floating && t_.size == 4) {
                const auto f = static_cast<float>(items[k].as_float());
                std::memcpy(p, &f, 4);
            } else if (t_.floating) {
                const double d = items[k].as_float();
                std::memcpy(p, &d, 8);
            } else if (items[k].kind() == kind::big_integer) {
                std::memcpy(p, items[k].node<const py::bigint>()->le.data(), 8);
            } else {
                const std::int64_t x = items[k].as_int();
                std::memcpy(p, &x, t_.size);  // little-endian: the low bytes
            }
        }
        return instance_of("array", "array", {object(std::string(1, t_.code)), object(raw)});
    }

    mutable std::mutex m_;
    const Typecode& t_;
    std::vector<object> items_;
};

}  // namespace

std::shared_ptr<PyServed> make_py_value(const PyArgs& args) {
    args.at_most(3);
    return std::make_shared<PyValueState>(args.at(0, "typecode"), args.at(1, "value"));
}

std::shared_ptr<PyServed> make_py_array(const PyArgs& args) {
    args.at_most(3);
    const Typecode& t = typecode_of(args.at(0, "typecode"));
    const object& init = args.at(1, "sequence");
    if (init.kind() == kind::bytes || init.kind() == kind::bytearray)
        return std::make_shared<PyArrayState>(t, init.as_bytes());
    if (init.kind() == kind::list || init.kind() == kind::tuple)
        return std::make_shared<PyArrayState>(t, init.as_sequence());
    if (init.kind() == kind::str)
        py_raise("TypeError", {"cannot use a str to initialize an array with typecode '" +
                               std::string(1, t.code) + "'"});
    py_raise("TypeError",
             {"'" + std::string(py::kind_name(init.kind())) + "' object is not iterable"});
}

}  // namespace mp::detail
