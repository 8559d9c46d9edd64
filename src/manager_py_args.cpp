// The arguments of a Python client's call (bound by position or keyword, as Python binds them),
// repr() of its values for messages, and the types a Python client may create.
#include <charconv>
#include <cstdio>

#include "manager_py.hpp"

namespace mp::detail {

PyArgs::PyArgs(std::string_view method, std::span<const py::object> positional,
               const py::object* keywords)
    : method_(method), pos_(positional), kw_(keywords) {
    if (kw_ && kw_->kind() != py::kind::dict) kw_ = nullptr;
}

const std::vector<std::pair<py::object, py::object>>& PyArgs::keywords() const {
    static const std::vector<std::pair<py::object, py::object>> none;
    return kw_ ? kw_->as_dict() : none;
}

const py::object* PyArgs::keyword(std::string_view name) const {
    for (const auto& [k, v] : keywords())
        if (k.kind() == py::kind::str && k.as_str() == name) return &v;
    return nullptr;
}

const py::object& PyArgs::at(std::size_t i, std::string_view name) const {
    if (i < pos_.size()) return pos_[i];
    if (const py::object* v = keyword(name)) return *v;
    py_raise("TypeError",
             {std::string(method_) + "() missing required argument '" + std::string(name) + "'"});
}

py::object PyArgs::get(std::size_t i, std::string_view name, py::object otherwise) const {
    if (i < pos_.size()) return pos_[i];
    if (const py::object* v = keyword(name)) return *v;
    return otherwise;
}

void PyArgs::at_most(std::size_t n) const {
    const std::size_t given = pos_.size() + keywords().size();
    if (given > n)
        py_raise("TypeError", {std::string(method_) + "() takes at most " + std::to_string(n) +
                               " arguments (" + std::to_string(given) + " given)"});
}

std::shared_ptr<PyServed> make_py_builtin(std::string_view type, const PyArgs& args) {
    if (type == "dict") return make_py_dict(args);
    if (type == "list") return make_py_list(args);
    if (type == "Queue") return make_py_queue(args, false);
    if (type == "JoinableQueue") return make_py_queue(args, true);
    if (type == "Namespace") return make_py_namespace(args);
    if (type == "Value") return make_py_value(args);
    if (type == "Array") return make_py_array(args);
    py_raise("KeyError", {py::object(type)});
}

namespace {

void repr_str(std::string& out, const std::string& s) {
    const char q =
        s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
    out += q;
    for (const char ch : s) {
        if (ch == q || ch == '\\') out += '\\';
        if (ch == '\n') out += "\\n";
        else out += ch;
    }
    out += q;
}

void repr_to(std::string& out, const py::object& o, int depth);

template <class R, class F>
void items(std::string& out, const R& r, const char* open, const char* close, F each) {
    out += open;
    bool first = true;
    for (const auto& item : r) {
        if (!first) out += ", ";
        first = false;
        each(item);
    }
    out += close;
}

void repr_to(std::string& out, const py::object& o, int depth) {
    if (depth > 50) {
        out += "...";
        return;
    }
    using py::kind;
    const auto nested = [&](const py::object& x) { repr_to(out, x, depth + 1); };
    switch (o.kind()) {
        case kind::none: out += "None"; break;
        case kind::boolean: out += o.as_bool() ? "True" : "False"; break;
        case kind::integer: out += std::to_string(o.as_int()); break;
        case kind::big_integer: out += "<int>"; break;
        case kind::floating: {
            char buf[32];
            const auto r = std::to_chars(buf, buf + sizeof buf, o.as_float());
            std::string s(buf, r.ptr);
            if (s.find_first_of(".eni") == std::string::npos) s += ".0";
            out += s;
            break;
        }
        case kind::str: repr_str(out, o.as_str()); break;
        case kind::bytes:
        case kind::bytearray: {
            std::string s;
            for (const std::byte b : o.as_bytes()) {
                const auto c = std::to_integer<unsigned char>(b);
                char hex[8];
                std::snprintf(hex, sizeof hex, "\\x%02x", c);
                s += c >= 32 && c < 127 && c != '\'' && c != '\\' ? std::string(1, char(c)) : hex;
            }
            out += (o.kind() == kind::bytes ? "b'" : "bytearray(b'") + s +
                   (o.kind() == kind::bytes ? "'" : "')");
            break;
        }
        case kind::list: items(out, o.as_sequence(), "[", "]", nested); break;
        case kind::tuple:
            items(out, o.as_sequence(), "(", o.as_sequence().size() == 1 ? ",)" : ")", nested);
            break;
        case kind::dict:
            items(out, o.as_dict(), "{", "}", [&](const auto& kv) {
                nested(kv.first);
                out += ": ";
                nested(kv.second);
            });
            break;
        case kind::set:
        case kind::frozenset:
            if (o.as_set().empty()) out += o.kind() == kind::set ? "set()" : "frozenset()";
            else items(out, o.as_set(), "{", "}", nested);
            break;
        case kind::global: {
            const auto& g = o.node<const py::global>();
            out += "<class '" + g->module + "." + g->name + "'>";
            break;
        }
        case kind::instance: {
            const auto& inst = o.node<py::instance>();
            out += inst->cls.name;
            if (inst->args) items(out, inst->args->items, "(", ")", nested);
            else out += "()";
            break;
        }
    }
}

}  // namespace

std::string PyServed::repr() const {
    try {
        return py_repr(value());
    } catch (const PyNoMethod&) {
        return "<" + std::string(type_name()) + " object served by multiproc>";
    }
}

std::string py_repr(const py::object& o) {
    std::string out;
    repr_to(out, o, 0);
    return out;
}

}  // namespace mp::detail
