// Python's manager protocol on a multiproc manager server: the server-level calls of Python's
// Server (create, incref, decref, get_methods, ...) on a connection's first request, then, after
// accept_connection, the calls of one client thread on its objects (Python's serve_client).
#include <algorithm>
#include <cstdio>

#include "manager_py.hpp"
#include "manager_wait.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "multiproc/pickle.hpp"

namespace mp::detail {

void py_raise(std::string type, std::vector<py::object> args) {
    std::string what = "multiproc: " + type;
    if (!args.empty() && args[0].kind() == py::kind::str) what += ": " + args[0].as_str();
    throw PyRaise(py::make_exception(std::move(type), std::move(args)), what);
}

namespace {

using py::object;

// A reply frame: (kind, value) pickled as Python's Connection.send pickles it.
std::vector<std::byte> reply(std::string_view kind, object value) {
    return pickle::dumps(py::make_tuple({object(kind), std::move(value)}),
                         pickle::default_protocol);
}

// ('#TRACEBACK', text): the client raises RemoteError(text), as for an exception a Python server
// could not send back as itself.
std::vector<std::byte> traceback(std::string_view type, const std::string& message) {
    return reply("#TRACEBACK",
                 object("Traceback (most recent call last):\n  (multiproc manager server)\n" +
                        std::string(type) + ": " + message + "\n"));
}

// The exception's text as Python prints it (KeyError('x') -> "KeyError: 'x'").
std::vector<std::byte> traceback_of(const py::object& exception) {
    const auto& inst = exception.node<py::instance>();
    const auto& args = inst->args->items;
    std::string text =
        args.size() == 1 && args[0].kind() == py::kind::str && inst->cls.name != "KeyError"
            ? args[0].as_str()
        : args.size() == 1 ? py_repr(args[0])
                           : py_repr(object(inst->args));
    return traceback(inst->cls.name, text);
}

// One request: (ident, methodname, args, kwds), or the exception that refuses a well-formed
// pickle naming what the server cannot hold (a Python function: `l.sort(key=len)`).
struct Request {
    object ident;
    std::string method;
    object args, kwds;
    std::optional<object> refused;
};

// The request a decoded frame holds; DecodeError when it is none.
Request request_of(const object& o) {
    if (o.kind() == py::kind::tuple && o.as_sequence().size() == 4) {
        const auto& t = o.as_sequence();
        if (t[1].kind() == py::kind::str &&
            (t[2].kind() == py::kind::tuple || t[2].kind() == py::kind::list) &&
            (t[3].kind() == py::kind::dict || t[3].is_none()))
            return Request{t[0], t[1].as_str(), t[2], t[3], std::nullopt};
    }
    throw DecodeError("a " + std::string(py::kind_name(o.kind())) +
                      ", not a request (ident, methodname, args, kwds)");
}

// The request in a frame, or nothing (logged) when the frame is not one.
std::optional<Request> parse(std::span<const std::byte> frame, const PyServerHooks& hooks) {
    std::string why;
    try {
        try {
            return request_of(pickle::loads(frame));
        } catch (const DecodeError& e) {
            if (std::string_view(e.what()).find("is not on the allowlist") == std::string::npos)
                throw;
            return Request{
                {},
                {},
                {},
                {},
                py::make_exception(
                    "NotImplementedError",
                    {"a multiproc manager server holds plain data only and runs no Python code, so it "
                     "refuses this request (a function such as sort's key= cannot run in C++): " +
                     std::string(e.what())})};
        }
    } catch (const std::exception& e) {
        why = e.what();
    }
    log_lazily(LogLevel::warning, [&] {
        return "manager at " + hooks.where() +
               ": a Python client sent what is not a manager request, its connection is "
               "closed: " +
               why;
    });
    return std::nullopt;
}

class PythonSession {
public:
    PythonSession(Connection& c, PyObjects& objects, const PyServerHooks& hooks)
        : c_(c), o_(objects), hooks_(hooks) {}

    // The first request (Python's handle_request); true when serve_client follows.
    bool handle_request(const Request& r) {
        static constexpr std::string_view kPublic[] = {
            "shutdown",    "create",     "accept_connection",
            "get_methods", "debug_info", "number_of_objects",
            "dummy",       "incref",     "decref"};
        if (std::find(std::begin(kPublic), std::end(kPublic), r.method) == std::end(kPublic)) {
            send(traceback("AssertionError", "'" + r.method + "' unrecognized"));
            return false;
        }
        if (r.method == "accept_connection") return send(reply("#RETURN", object()));
        if (r.method == "shutdown") {
            send(reply("#RETURN", object()));
            hooks_.stop();
            return false;
        }
        const PyArgs args(r.method, r.args.as_sequence(), r.kwds.is_none() ? nullptr : &r.kwds);
        try {
            send(reply("#RETURN", server_call(r.method, args)));
        } catch (const PyRaise& e) {
            send(traceback_of(e.exception));
        } catch (const std::exception& e) {
            send(traceback("RuntimeError", e.what()));
        }
        return false;
    }

    // Python's serve_client: one request after another until the client leaves.
    void serve_client() {
        RequestWait wait;
        while (!hooks_.stopping()) {
            std::vector<std::byte> frame;
            wait.before_recv(c_);
            try {
                frame = c_.recv_bytes();
            } catch (const std::exception&) {
                return;  // the client is gone
            }
            wait.received();
            const auto r = parse(frame, hooks_);
            if (!r || !send(call(*r))) return;
            wait.replied();
        }
    }

private:
    bool send(const std::vector<std::byte>& frame) {
        try {
            c_.send_bytes(frame);
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }

    std::shared_ptr<PyServed> find(const object& ident) {
        std::lock_guard lk(o_.m);
        if (ident.kind() == py::kind::str)
            if (auto it = o_.entries.find(ident.as_str()); it != o_.entries.end())
                return it->second.object;
        py_raise("KeyError", {ident});
    }

    std::vector<std::byte> call(const Request& r) {
        if (r.refused) return reply("#ERROR", *r.refused);
        std::shared_ptr<PyServed> obj;
        try {
            obj = find(r.ident);
        } catch (const PyRaise& e) {
            return traceback_of(e.exception);
        }
        const PyArgs args(r.method, r.args.as_sequence(), r.kwds.is_none() ? nullptr : &r.kwds);
        const auto exposed = obj->exposed();
        try {
            if (std::find(exposed.begin(), exposed.end(), r.method) != exposed.end()) {
                const PyCallContext ctx{[this] { return abandoned(); }, std::nullopt};
                object result = obj->call(r.method, args, ctx);
                if (ctx.proxied) return reply("#PROXY", proxy(*ctx.proxied));
                return reply("#RETURN", std::move(result));
            }
            if (r.method == "#GETVALUE") return reply("#RETURN", obj->value());
            if (r.method == "__str__" || r.method == "__repr__")
                return reply("#RETURN", object(obj->repr()));
            throw PyNoMethod("method '" + r.method + "' of '" + std::string(obj->type_name()) +
                             "' object is not in exposed");
        } catch (const PyRaise& e) {
            return reply("#ERROR", e.exception);
        } catch (const PyNoMethod& e) {
            return traceback("AttributeError", e.message);
        } catch (const std::exception& e) {
            return traceback("RuntimeError", e.what());
        }
    }

    // (exposed, Token(typeid, address, ident)) of a method's result served as a new object, as
    // Python's serve_client creates it (the client's proxy takes its own reference).
    object proxy(const PyProxied& p) {
        const std::string ident = serve(p.object);
        const std::string where = hooks_.where();
        const auto colon = where.rfind(':');
        object address(where);
        if (colon != std::string::npos && colon + 1 < where.size() &&
            where.find_first_not_of("0123456789", colon + 1) == std::string::npos)
            address = py::make_tuple(
                {object(where.substr(0, colon)),
                 object(static_cast<std::int64_t>(std::stoll(where.substr(colon + 1))))});
        auto token = std::make_shared<py::instance>(py::instance{
            {"multiprocessing.managers", "Token"},
            std::make_shared<py::tuple>(),
            std::make_shared<const object>(py::make_tuple({object(p.type_id), std::move(address),
                                                           object(ident)}))});
        return py::make_tuple({exposed_of(*p.object), object(std::move(token))});
    }

    static object exposed_of(const PyServed& obj) {
        std::vector<object> exposed;
        for (auto m : obj.exposed()) exposed.emplace_back(m);
        return py::make_tuple(std::move(exposed));
    }

    // The caller is gone (a readable connection while it waits for a reply: its end) or the
    // server stops.
    bool abandoned() {
        if (hooks_.stopping()) return true;
        try {
            return c_.poll();
        } catch (const std::exception&) {
            return true;
        }
    }

    object server_call(const std::string& method, const PyArgs& a) {
        if (method == "dummy") return object();
        if (method == "create") return create(a);
        if (method == "incref") return incref(a.at(0, "ident"), +1);
        if (method == "decref") return incref(a.at(0, "ident"), -1);
        if (method == "get_methods") return get_methods(a.at(0, "token"));
        std::lock_guard lk(o_.m);
        if (method == "number_of_objects")
            return object(static_cast<std::int64_t>(o_.entries.size()));
        std::vector<std::string> lines;  // debug_info
        for (const auto& [ident, e] : o_.entries)
            lines.push_back("  " + ident + ":       refcount=" + std::to_string(e.refs) + "\n    " +
                            e.object->repr().substr(0, 75));
        std::sort(lines.begin(), lines.end());
        std::string text;
        for (const auto& l : lines) text += (text.empty() ? "" : "\n") + l;
        return object(text);
    }

    object create(const PyArgs& a) {
        const object& type = a.at(0, "typeid");
        if (type.kind() != py::kind::str) py_raise("TypeError", {"typeid must be a str"});
        std::shared_ptr<PyServed> obj;
        {
            std::lock_guard lk(o_.m);
            if (auto it = o_.registered.find(type.as_str()); it != o_.registered.end())
                obj = it->second;
        }
        if (obj && (a.positional().size() > 1 || !a.keywords().empty()))
            py_raise("TypeError", {"'" + type.as_str() + "' takes no arguments"});
        if (!obj) obj = make_py_builtin(type.as_str(), a.drop(1));
        return py::make_tuple({object(serve(obj)), exposed_of(*obj)});
    }

    // Serves obj to clients (once: its ident is stable) and takes a reference: its ident.
    std::string serve(const std::shared_ptr<PyServed>& obj) {
        std::lock_guard lk(o_.m);
        auto [slot, fresh] = o_.idents.try_emplace(obj.get());
        if (fresh) {
            char hex[24];
            std::snprintf(hex, sizeof hex, "%llx",
                          static_cast<unsigned long long>(0x7f0000000000ULL + o_.next_ident++));
            slot->second = hex;
        }
        auto& entry = o_.entries[slot->second];
        entry.object = obj;
        ++entry.refs;
        return slot->second;
    }

    object incref(const object& ident, int by) {
        std::shared_ptr<PyServed> dead;  // destroyed outside the lock
        std::lock_guard lk(o_.m);
        auto it =
            ident.kind() == py::kind::str ? o_.entries.find(ident.as_str()) : o_.entries.end();
        if (it == o_.entries.end()) py_raise("KeyError", {ident});
        if ((it->second.refs += by) <= 0) {
            dead = std::move(it->second.object);
            o_.idents.erase(dead.get());
            o_.entries.erase(it);
        }
        return object();
    }

    object get_methods(const object& token) {
        const auto* inst = std::get_if<std::shared_ptr<py::instance>>(&token.value());
        if (!inst || !(*inst)->state || (*inst)->state->kind() != py::kind::tuple ||
            (*inst)->state->as_sequence().size() != 3)
            py_raise("TypeError", {"get_methods takes a Token"});
        return exposed_of(*find((*inst)->state->as_sequence()[2]));
    }

    Connection& c_;
    PyObjects& o_;
    const PyServerHooks& hooks_;
};

}  // namespace

void serve_python(Connection& c, std::vector<std::byte> first, PyObjects& objects,
                  const PyServerHooks& hooks) {
    const auto r = parse(first, hooks);
    if (!r) return;
    if (r->refused) {  // before accept_connection a client only speaks to the server itself
        log_lazily(LogLevel::warning, [&] {
            return "manager at " + hooks.where() +
                   ": a Python client's first request names what the server cannot hold, its "
                   "connection is closed";
        });
        return;
    }
    PythonSession session(c, objects, hooks);
    if (session.handle_request(*r) && r->method == "accept_connection") session.serve_client();
}

}  // namespace mp::detail
