// The Python side of a manager server: objects Python clients reach through Python's
// multiprocessing.managers protocol (src/manager_py_server.cpp), their calls, and the table of
// the objects they hold references to.
//
// A Python client sends `(ident, methodname, args, kwds)` pickled and gets back
// `('#RETURN', value)`, `('#ERROR', exception)` (re-raised as it is), `('#TRACEBACK', text)`
// (a RemoteError) or `('#PROXY', (exposed, token))`. Values stay py::object on the server.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "multiproc/pickle_object.hpp"

namespace mp::detail {

/// A Python exception a method raises: the client re-raises it (`('#ERROR', exception)`).
struct PyRaise : std::runtime_error {
    /// `what` is for a C++ caller (the C++ side of a PyQueue, PyDict, ...).
    PyRaise(py::object e, const std::string& what)
        : std::runtime_error(what), exception(std::move(e)) {}
    py::object exception;
};

/// Throws PyRaise of builtins.<type>(args...).
[[noreturn]] void py_raise(std::string type, std::vector<py::object> args = {});

/// A method the object does not expose: the client gets a RemoteError (`#TRACEBACK`), as from
/// Python's server.
struct PyNoMethod : std::runtime_error {
    explicit PyNoMethod(const std::string& m) : std::runtime_error(m), message(m) {}
    std::string message;
};

/// The arguments of one call: positional, then keywords, bound by position or name.
class PyArgs {
public:
    /// `method` names the call in TypeError messages.
    PyArgs(std::string_view method, std::span<const py::object> positional,
           const py::object* keywords);
    /// Argument i (or keyword `name`); TypeError when absent.
    [[nodiscard]] const py::object& at(std::size_t i, std::string_view name) const;
    /// Argument i (or keyword `name`), or `otherwise`.
    [[nodiscard]] py::object get(std::size_t i, std::string_view name, py::object otherwise) const;
    /// TypeError unless at most n arguments (positional and keywords) were given.
    void at_most(std::size_t n) const;
    /// The keyword arguments (empty dict when none).
    [[nodiscard]] const std::vector<std::pair<py::object, py::object>>& keywords() const;
    /// The positional arguments.
    [[nodiscard]] std::span<const py::object> positional() const noexcept { return pos_; }
    /// The arguments without the first n positional ones (`create(typeid, *args, **kwds)`).
    [[nodiscard]] PyArgs drop(std::size_t n) const {
        return PyArgs(method_, pos_.subspan(std::min(n, pos_.size())), kw_);
    }

private:
    const py::object* keyword(std::string_view name) const;
    std::string_view method_;
    std::span<const py::object> pos_;
    const py::object* kw_;
};

class PyServed;

/// A method's result that the client reaches through a proxy (Python's method_to_typeid, e.g.
/// dict.__iter__ -> 'Iterator'): the server serves `object` and replies `#PROXY`.
struct PyProxied {
    std::shared_ptr<PyServed> object;
    std::string_view type_id;
};

/// What a call may need besides its arguments.
struct PyCallContext {
    /// True once the caller is gone (its connection closed) or the server stops: a blocking
    /// call polls it and gives up, so a killed client frees its thread and takes no item.
    std::function<bool()> abandoned;
    /// Set by a method whose result is a new served object (its py::object result is ignored).
    mutable std::optional<PyProxied> proxied;
};

/// An object served to Python clients (a queue, dict, list or Namespace). Objects lock
/// themselves: calls come from one server thread per client connection, and from the C++ side
/// of the server process.
class PyServed {
public:
    virtual ~PyServed() = default;
    /// Python's name of the type ("dict", "Queue", ...).
    [[nodiscard]] virtual std::string_view type_name() const = 0;
    /// The methods clients may call (Python's `exposed`).
    [[nodiscard]] virtual std::span<const std::string_view> exposed() const = 0;
    /// Runs a method: its result, PyRaise for an exception, PyNoMethod for one not exposed.
    virtual py::object call(std::string_view method, const PyArgs& args,
                            const PyCallContext& ctx) = 0;
    /// A copy of the value (`#GETVALUE`); PyNoMethod when it has none to send (a queue).
    [[nodiscard]] virtual py::object value() const = 0;
    /// Python's repr() of the object (`__str__`, `__repr__`, debug_info); the value's by default.
    [[nodiscard]] virtual std::string repr() const;
};

/// The objects Python clients may create (Python's `create(typeid, ...)`): a registered one (the
/// same object each time) or a new dict, list, Queue, JoinableQueue or Namespace.
std::shared_ptr<PyServed> make_py_builtin(std::string_view type, const PyArgs& args);
/// The built-in types of each file (src/manager_py_*.cpp).
std::shared_ptr<PyServed> make_py_queue(const PyArgs& args, bool joinable);
std::shared_ptr<PyServed> make_py_dict(const PyArgs& args);
std::shared_ptr<PyServed> make_py_list(const PyArgs& args);
std::shared_ptr<PyServed> make_py_namespace(const PyArgs& args);
std::shared_ptr<PyServed> make_py_value(const PyArgs& args);
std::shared_ptr<PyServed> make_py_array(const PyArgs& args);
/// Python's iterator over `items` (a snapshot of a dict's keys): `__next__` raises StopIteration
/// after the last, and RuntimeError from the first call on which `changed()` is true (the dict
/// changed size), as a dict's own iterator does.
std::shared_ptr<PyServed> make_py_iterator(std::vector<py::object> items,
                                           std::function<bool()> changed);

/// Python's slice.indices(n) of a slice object: the first index, the step and how many items
/// it selects (items start + k * step for k below length).
struct PySlice {
    std::int64_t start = 0, step = 1, length = 0;
    [[nodiscard]] std::size_t at(std::int64_t k) const {
        return static_cast<std::size_t>(start + k * step);
    }
};
/// True for a builtins.slice(start, stop, step).
bool is_slice(const py::object& o);
/// The slice's indices over `size` items: TypeError, ValueError (a zero step) as Python's.
PySlice py_slice_of(const py::object& slice, std::size_t size);

/// Python's `a == b` for plain values (1 == 1.0 == True; list and tuple item by item; sets and
/// dicts regardless of order).
bool py_eq(const py::object& a, const py::object& b);
/// Python's `bool(o)`.
bool py_truth(const py::object& o);
/// Python's `a < b` for numbers, str, bytes, and lists or tuples of those; TypeError otherwise.
bool py_less(const py::object& a, const py::object& b);

/// Python's repr() of a value, for messages and `__repr__` (a big int is shown as <int>).
std::string py_repr(const py::object& o);

/// The objects a server serves to Python clients and the references those clients hold
/// (Python's id_to_obj and id_to_refcount), under one lock.
struct PyObjects {
    struct Entry {
        std::shared_ptr<PyServed> object;
        std::int64_t refs = 0;
    };
    std::mutex m;
    std::unordered_map<std::string, std::shared_ptr<PyServed>> registered;  // typeid -> object
    std::unordered_map<std::string, Entry> entries;                         // ident -> entry
    std::unordered_map<const PyServed*, std::string> idents;                // stable idents
    std::uint64_t next_ident = 1;
};

/// What the Python protocol needs of the server around it.
struct PyServerHooks {
    std::function<bool()> stopping;      ///< true once the server stops
    std::function<void()> stop;          ///< a client called shutdown
    std::function<std::string()> where;  ///< the server's address, for log lines
};

}  // namespace mp::detail

namespace mp {
class Connection;
}

namespace mp::detail {

/// Serves one authenticated connection whose first frame (`first`) is a pickle: Python's
/// handle_request, then serve_client after accept_connection. Returns when the client leaves,
/// the server stops, or the client sends what is not a request (logged; the connection ends).
void serve_python(Connection& c, std::vector<std::byte> first, PyObjects& objects,
                  const PyServerHooks& hooks);

}  // namespace mp::detail
