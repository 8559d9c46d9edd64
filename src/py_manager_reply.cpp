// The replies of a Python manager server: ('#RETURN', value), ('#PROXY', (exposed, Token)),
// ('#ERROR', exception), ('#TRACEBACK', text), ('#UNSERIALIZABLE', text) (Python's
// managers.dispatch and convert_to_error), and Python's exceptions as C++ ones.
#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>

#include "multiproc/errors.hpp"
#include "py_manager_client.hpp"

namespace mp::py_manager::detail {

namespace {

constexpr std::size_t kReprLimit = 200;  // a message names a value, it does not dump it

void repr_into(std::string& out, const py::object& o);

void repr_items(std::string& out, const std::vector<py::object>& items, char open, char close) {
    out += open;
    for (std::size_t i = 0; i < items.size() && out.size() < kReprLimit; ++i) {
        if (i) out += ", ";
        repr_into(out, items[i]);
    }
    if (open == '(' && items.size() == 1) out += ',';
    out += close;
}

void quoted(std::string& out, std::string_view s) {
    out += '\'';
    for (char ch : s) {
        if (ch == '\'' || ch == '\\') out += '\\';
        out += ch;
    }
    out += '\'';
}

// Python's repr() of plain data, near enough for a message.
void repr_into(std::string& out, const py::object& o) {
    if (out.size() >= kReprLimit) return;
    switch (o.kind()) {
        case py::kind::none: out += "None"; return;
        case py::kind::boolean: out += o.as_bool() ? "True" : "False"; return;
        case py::kind::integer: out += std::to_string(o.as_int()); return;
        case py::kind::floating: {
            char buf[32];
            const auto r = std::to_chars(buf, buf + sizeof buf, o.as_float());
            out.append(buf, r.ptr);
            return;
        }
        case py::kind::str: quoted(out, o.as_str()); return;
        case py::kind::bytes:
        case py::kind::bytearray:
            out += "<" + std::to_string(o.as_bytes().size()) + " bytes>";
            return;
        case py::kind::list: repr_items(out, o.as_sequence(), '[', ']'); return;
        case py::kind::tuple: repr_items(out, o.as_sequence(), '(', ')'); return;
        case py::kind::set:
        case py::kind::frozenset: repr_items(out, o.as_set(), '{', '}'); return;
        case py::kind::dict: {
            out += '{';
            bool first = true;
            for (const auto& [k, v] : o.as_dict()) {
                if (out.size() >= kReprLimit) break;
                if (!first) out += ", ";
                first = false;
                repr_into(out, k);
                out += ": ";
                repr_into(out, v);
            }
            out += '}';
            return;
        }
        default: out += "<" + std::string(py::kind_name(o.kind())) + ">"; return;
    }
}

// Python's str(exc): its one argument (str as is; a KeyError's repr'd), else the args' repr.
std::string exception_text(const py::instance& e) {
    const std::vector<py::object> none;
    const auto& args = e.args ? e.args->items : none;
    std::string out;
    if (args.size() == 1 && args[0].kind() == py::kind::str && e.cls.name != "KeyError")
        out = args[0].as_str();
    else if (args.size() == 1) repr_into(out, args[0]);
    else if (args.size() > 1) repr_items(out, args, '(', ')');
    return out.size() > kReprLimit ? out.substr(0, kReprLimit) + "..." : out;
}

// '#ERROR': the exception the referent's method raised, as the matching C++ exception.
[[noreturn]] void raise_error(const py::object& exc) {
    const auto* inst = std::get_if<std::shared_ptr<py::instance>>(&exc.value());
    if (!inst) throw DecodeError("mp::py_manager: an '#ERROR' reply carrying no exception");
    const py::global& cls = (*inst)->cls;
    const std::string type = cls.module == "builtins" ? cls.name : cls.module + "." + cls.name;
    const std::string text = exception_text(**inst);
    const std::string what = text.empty() ? type : type + ": " + text;
    const std::string& n = cls.name;
    if (cls.module == "_queue" || cls.module == "queue") {
        if (n == "Empty") throw Empty(what);
        if (n == "Full") throw Full(what);
    } else if (cls.module == "builtins") {
        if (n == "KeyError" || n == "IndexError") throw std::out_of_range(what);
        if (n == "ValueError" || n == "TypeError") throw std::invalid_argument(what);
        if (n == "TimeoutError") throw TimeoutError(what);
    }
    throw RemoteError(type, text, "");
}

// '#TRACEBACK': Python's formatted traceback; its last line names the exception.
[[noreturn]] void raise_traceback(const std::string& text, bool unserializable) {
    std::string_view last(text);
    while (!last.empty() && last.back() == '\n') last.remove_suffix(1);
    if (const auto nl = last.rfind('\n'); nl != std::string_view::npos) last.remove_prefix(nl + 1);
    const auto colon = last.find(": ");
    std::string type(colon == std::string_view::npos ? last : last.substr(0, colon));
    std::string message(colon == std::string_view::npos ? "" : last.substr(colon + 2));
    if (unserializable) {
        type = "Unserializable message";
        message = std::string(last);
    }
    throw RemoteError(type.empty() ? "RemoteError" : type, message, text);
}

}  // namespace

void unexpected(std::string_view method, const py::object& value) {
    std::string shown;
    repr_into(shown, value);
    throw DecodeError("mp::py_manager: an unexpected reply to " + std::string(method) + ": " +
                      std::string(py::kind_name(value.kind())) + " " + shown);
}

Reply interpret(const std::shared_ptr<ClientState>& c, const py::object& reply) {
    if (reply.kind() != py::kind::tuple || reply.as_sequence().size() != 2 ||
        reply.as_sequence()[0].kind() != py::kind::str)
        unexpected("a request (not a (kind, result) pair)", reply);
    const std::string& kind = reply.as_sequence()[0].as_str();
    const py::object& result = reply.as_sequence()[1];
    if (kind == "#RETURN") return Reply{result, nullptr};
    if (kind == "#ERROR") raise_error(result);
    if (kind == "#TRACEBACK" || kind == "#UNSERIALIZABLE") {
        if (result.kind() != py::kind::str) unexpected("a request (" + kind + ")", result);
        raise_traceback(result.as_str(), kind == "#UNSERIALIZABLE");
    }
    if (kind == "#PROXY" && c) {
        // (exposed, Token(typeid, address, id)); the token's address is the server's own view
        // of itself, so the proxy keeps the address this client reached it at, as Python does.
        const auto bad = [&] { unexpected("a request ('#PROXY')", result); };
        if (result.kind() != py::kind::tuple || result.as_sequence().size() != 2) bad();
        const py::object& token = result.as_sequence()[1];
        const auto* inst = std::get_if<std::shared_ptr<py::instance>>(&token.value());
        if (!inst || (*inst)->cls.name != "Token" || !(*inst)->state) bad();
        const py::object& state = *(*inst)->state;
        if (state.kind() != py::kind::tuple || state.as_sequence().size() != 3 ||
            state.as_sequence()[0].kind() != py::kind::str)
            bad();
        const std::string type_id = state.as_sequence()[0].as_str();
        return Reply{py::object(),
                     adopt(c, type_id,
                           py::make_tuple({state.as_sequence()[2], result.as_sequence()[0]}))};
    }
    unexpected("a request (kind '" + kind + "')", reply);
}

}  // namespace mp::py_manager::detail
