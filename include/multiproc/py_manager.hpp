// mp::py_manager: a multiproc program as a client of a Python manager server (Python's
// BaseManager.connect and its proxies), speaking Python's manager protocol with pickles
// (docs/py_manager.md).
//
//   mp::py_manager::Client m("127.0.0.1:50000", "secret");   // QueueManager(address, authkey)
//   m.connect();                                           // m.connect()
//   mp::py_manager::QueueProxy q = m.queue("get_queue");   // q = m.get_queue()
//   q.put("hello");
//   mp::py_manager::DictProxy d = m.dict();                // d = m.dict() (a SyncManager)
//   d.set("k", 1.5);
//   double v = d.get<double>("k");
//
// The protocol: every request is a pickle (ident, methodname, args, kwds) on a Connection
// authenticated with Python's HMAC challenge; the server answers ('#RETURN', value),
// ('#ERROR', exception), ('#TRACEBACK', text) or ('#PROXY', (exposed, Token)). The server's own
// calls (dummy, create, incref, decref, number_of_objects, shutdown) each take a fresh
// connection, as Python's client does; calls on objects go through connections that were first
// handed to a server thread with accept_connection, kept in a per-client pool, one per thread
// calling at the same time. Values are pickled with mp::pickle: any type of its mapping table
// (docs/pickle.md), or mp::py::object.
//
// References: a proxy holds the one reference the server's create (or a '#PROXY' reply) counted
// for it; copies in one process share it; the last copy's destructor sends decref. A fork child
// may use an inherited proxy (its calls open the child's own connections) but never releases
// the parent's reference. Proxies are not shippable to other processes: a child connects with
// its own Client (Python's docs example does the same).
//
// Errors: an exception the server raises for a call ('#ERROR') becomes the matching C++ type:
// KeyError and IndexError std::out_of_range, ValueError and TypeError std::invalid_argument,
// queue.Empty mp::Empty, queue.Full mp::Full, TimeoutError mp::TimeoutError, anything else
// mp::RemoteError carrying Python's type name; what() starts with Python's type name
// ("KeyError: 'k'"). A '#TRACEBACK' is an mp::RemoteError carrying the traceback text. A reply
// that is not one of the four forms, or a pickle that does not decode, is mp::DecodeError. A
// wrong authkey is mp::AuthenticationError. Once connect() succeeded, a server that is gone
// (killed mid-call included) makes calls fail at once with mp::EOFError, never a hang.
//
// Thread safety: Client and proxies may be used from several threads at once; a call blocked in
// the server (a queue get) holds only its own connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "multiproc/listener.hpp"
#include "multiproc/pickle.hpp"
#include "multiproc/timeout.hpp"

namespace mp::py_manager {

class BaseProxy;

namespace detail {

struct ClientState;

/// The reference one proxy (and its copies) holds on a server object.
struct ProxyRef {
    std::shared_ptr<ClientState> client;
    std::string id;                    ///< the server's ident ('%x' % id(obj))
    std::string type_id;               ///< the typeid it was registered under
    std::vector<std::string> exposed;  ///< the methods the server lets this proxy call
    int pid = 0;                       ///< the process that owns the reference
    ProxyRef(std::shared_ptr<ClientState> c, std::string i, std::string t,
             std::vector<std::string> e);
    ~ProxyRef();
    ProxyRef(const ProxyRef&) = delete;
    ProxyRef& operator=(const ProxyRef&) = delete;
};

/// What a call returned: a value, or a new proxy ('#PROXY').
struct Reply {
    py::object value;
    std::shared_ptr<ProxyRef> proxy;
};

/// Sends one pickled request on a pooled connection and returns the decoded reply.
Reply call(const std::shared_ptr<ClientState>& c, const std::vector<std::byte>& request);
/// Sends one pickled request to the server itself on a fresh connection: its '#RETURN' value.
py::object dispatch(ClientState& c, const std::vector<std::byte>& request);
/// A proxy reference from create's (ident, exposed) reply.
std::shared_ptr<ProxyRef> adopt(const std::shared_ptr<ClientState>& c, std::string type_id,
                                const py::object& created);
/// mp::DecodeError: a '#RETURN' value that is not what the method returns.
[[noreturn]] void unexpected(std::string_view method, const py::object& value);

// No keyword arguments: the request's kwds.
inline const std::map<std::string, int> no_kwds{};

/// The pickle of Python's (ident, methodname, args, kwds) request.
template <class Id, class... A>
std::vector<std::byte> request(const Id& ident, std::string_view method, const A&... args) {
    return pickle::dumps(std::forward_as_tuple(ident, method, std::forward_as_tuple(args...),
                                               no_kwds));
}

/// The call's reply as an R: a proxy type takes the '#PROXY' reference, any other type is
/// converted from the '#RETURN' value.
template <class R>
R reply_as(Reply r, std::string_view method) {
    if constexpr (std::is_base_of_v<BaseProxy, R>) {
        if (!r.proxy) unexpected(method, r.value);
        return R(std::move(r.proxy));
    } else if constexpr (std::is_void_v<R>) {
        (void)r;
        (void)method;
    } else {
        return pickle::detail::convert<R>(r.value);
    }
}

}  // namespace detail

/// A proxy to any object of a Python manager server (Python's BaseProxy / AutoProxy): calls
/// its exposed methods by name. A cheap handle; the last copy releases the reference.
class BaseProxy {
public:
    /// Adopts a reference (what Client::create and '#PROXY' replies make).
    explicit BaseProxy(std::shared_ptr<detail::ProxyRef> ref) : ref_(std::move(ref)) {}

    /// obj.method(*args) on the server, its result as an R (a py::object by default, void to
    /// ignore it, a proxy type for a method that returns a proxy). Blocks until the server
    /// replies; errors as the top of this header says.
    template <class R = py::object, class... A>
    R call(std::string_view method, const A&... args) const {
        return detail::reply_as<R>(detail::call(ref_->client,
                                                detail::request(ref_->id, method, args...)),
                                   method);
    }
    /// A copy of the referent (Python's _getvalue(): the '#GETVALUE' fallback).
    template <class T = py::object>
    T getvalue() const {
        return call<T>("#GETVALUE");
    }
    /// The server's ident of the object.
    [[nodiscard]] const std::string& id() const noexcept { return ref_->id; }
    /// The typeid the object was made under ("dict", "get_queue", ...).
    [[nodiscard]] const std::string& type_id() const noexcept { return ref_->type_id; }
    /// The method names the server lets this proxy call.
    [[nodiscard]] const std::vector<std::string>& exposed() const noexcept { return ref_->exposed; }

protected:
    std::shared_ptr<detail::ProxyRef> ref_;
};

/// A dict on a Python server (Python's DictProxy: the server registers its typeid with
/// proxytype=DictProxy, or makes it through SyncManager's "dict").
class DictProxy : public BaseProxy {
public:
    using BaseProxy::BaseProxy;
    /// d[k] = v.
    template <class K, class V>
    void set(const K& k, const V& v) const {
        call<void>("__setitem__", k, v);
    }
    /// d[k]; std::out_of_range ("KeyError: ...") when missing.
    template <class T = py::object, class K>
    T get(const K& k) const {
        return call<T>("__getitem__", k);
    }
    /// d.get(k, default).
    template <class T, class K>
    T get(const K& k, const T& fallback) const {
        return call<T>("get", k, fallback);
    }
    /// k in d.
    template <class K>
    bool contains(const K& k) const {
        return call<bool>("__contains__", k);
    }
    /// del d[k]; std::out_of_range ("KeyError: ...") when missing.
    template <class K>
    void erase(const K& k) const {
        call<void>("__delitem__", k);
    }
    /// d.pop(k); std::out_of_range when missing.
    template <class T = py::object, class K>
    T pop(const K& k) const {
        return call<T>("pop", k);
    }
    /// len(d).
    [[nodiscard]] std::size_t size() const { return call<std::size_t>("__len__"); }
    /// d.keys(), in the dict's order.
    template <class T = py::object>
    std::vector<T> keys() const {
        return call<std::vector<T>>("keys");
    }
    /// d.values(), in the dict's order.
    template <class T = py::object>
    std::vector<T> values() const {
        return call<std::vector<T>>("values");
    }
    /// d.items(), in the dict's order.
    template <class K = py::object, class V = py::object>
    std::vector<std::pair<K, V>> items() const {
        return call<std::vector<std::pair<K, V>>>("items");
    }
    /// d.update(m) with any map (or py::object dict).
    template <class M>
    void update(const M& m) const {
        call<void>("update", m);
    }
    /// d.clear().
    void clear() const { call<void>("clear"); }
    /// d.copy(): the whole dict (a py::object dict by default, or any map type M).
    template <class M = py::object>
    M copy() const {
        return call<M>("copy");
    }
};

/// A list on a Python server (Python's ListProxy). Indexes may be negative, as Python's.
class ListProxy : public BaseProxy {
public:
    using BaseProxy::BaseProxy;
    /// l.append(v).
    template <class V>
    void append(const V& v) const {
        call<void>("append", v);
    }
    /// l.extend(items) (any list-like the codec pickles as a list).
    template <class R>
    void extend(const R& items) const {
        call<void>("extend", items);
    }
    /// l[i]; std::out_of_range ("IndexError: ...") outside the list.
    template <class T = py::object>
    T get(std::int64_t i) const {
        return call<T>("__getitem__", i);
    }
    /// l[i] = v; std::out_of_range outside the list.
    template <class V>
    void set(std::int64_t i, const V& v) const {
        call<void>("__setitem__", i, v);
    }
    /// l.index(v); std::invalid_argument ("ValueError: ...") when v is not in the list.
    template <class V>
    std::int64_t index(const V& v) const {
        return call<std::int64_t>("index", v);
    }
    /// l.count(v).
    template <class V>
    std::size_t count(const V& v) const {
        return call<std::size_t>("count", v);
    }
    /// v in l.
    template <class V>
    bool contains(const V& v) const {
        return call<bool>("__contains__", v);
    }
    /// l.insert(i, v).
    template <class V>
    void insert(std::int64_t i, const V& v) const {
        call<void>("insert", i, v);
    }
    /// l.pop(i) (the last by default); std::out_of_range when empty or outside.
    template <class T = py::object>
    T pop(std::int64_t i = -1) const {
        return call<T>("pop", i);
    }
    /// l.remove(v); std::invalid_argument when v is not in the list.
    template <class V>
    void remove(const V& v) const {
        call<void>("remove", v);
    }
    /// len(l).
    [[nodiscard]] std::size_t size() const { return call<std::size_t>("__len__"); }
    /// l[:]: the whole list (std::vector<T>).
    template <class T = py::object>
    std::vector<T> copy() const {
        return getvalue<std::vector<T>>();
    }
};

/// A queue.Queue on a Python server (what SyncManager's Queue and the docs' get_queue serve).
class QueueProxy : public BaseProxy {
public:
    using BaseProxy::BaseProxy;
    /// q.put(v, timeout=...): waits while a bounded queue is full; mp::Full after the timeout.
    template <class V>
    void put(const V& v, Timeout timeout = forever) const {
        if (timeout.is_forever()) call<void>("put", v);
        else call<void>("put", v, true, seconds(timeout));
    }
    /// q.put_nowait(v); mp::Full when full.
    template <class V>
    void put_nowait(const V& v) const {
        call<void>("put", v, false);
    }
    /// q.get(timeout=...): waits for an item; mp::Empty after the timeout.
    template <class T = py::object>
    T get(Timeout timeout = forever) const {
        if (timeout.is_forever()) return call<T>("get");
        return call<T>("get", true, seconds(timeout));
    }
    /// q.get_nowait(); mp::Empty when empty.
    template <class T = py::object>
    T get_nowait() const {
        return call<T>("get", false);
    }
    /// q.qsize().
    [[nodiscard]] std::size_t qsize() const { return call<std::size_t>("qsize"); }
    /// q.empty().
    [[nodiscard]] bool empty() const { return call<bool>("empty"); }
    /// q.full().
    [[nodiscard]] bool full() const { return call<bool>("full"); }
    /// q.task_done() (a JoinableQueue).
    void task_done() const { call<void>("task_done"); }

private:
    static double seconds(Timeout t) { return std::chrono::duration<double>(t.duration()).count(); }
};

/// A client of a Python manager server (Python's BaseManager(address, authkey) followed by
/// connect()). A cheap handle: copies share one connection pool.
class Client {
public:
    /// A client of the server at `address` ("host:port" for Python's (host, port), else a Unix
    /// socket path) holding `authkey`. Nothing is sent until connect().
    Client(const Address& address, std::string authkey, AuthOptions auth = {});

    /// Checks that the server answers (Python's connect(): a 'dummy' request).
    /// mp::AuthenticationError for a wrong key; std::system_error when nobody listens.
    void connect();
    /// A new object of the registered `type_id` made from args (Python's m.<type_id>(*args)):
    /// a proxy of type P to it. A typeid whose callable returns one shared object (the docs'
    /// get_queue) gives a proxy to that same object on every call.
    template <class P = BaseProxy, class... A>
    P create(std::string_view type_id, const A&... args) const {
        const py::object created =
            detail::dispatch(*s_, detail::request(std::monostate{}, "create", type_id, args...));
        return P(detail::adopt(s_, std::string(type_id), created));
    }
    /// m.<type_id>() as a DictProxy ("dict": SyncManager's new dict).
    [[nodiscard]] DictProxy dict(std::string_view type_id = "dict") const {
        return create<DictProxy>(type_id);
    }
    /// m.<type_id>() as a ListProxy ("list": SyncManager's new list).
    [[nodiscard]] ListProxy list(std::string_view type_id = "list") const {
        return create<ListProxy>(type_id);
    }
    /// m.<type_id>() as a QueueProxy ("Queue": SyncManager's new queue).
    [[nodiscard]] QueueProxy queue(std::string_view type_id = "Queue") const {
        return create<QueueProxy>(type_id);
    }
    /// How many objects the server holds references for (Python's _number_of_objects()).
    [[nodiscard]] std::size_t number_of_objects() const;
    /// Asks the server to stop (Python's server 'shutdown' call).
    void shutdown() const;
    /// The server's address.
    [[nodiscard]] const Address& address() const noexcept;

private:
    std::shared_ptr<detail::ClientState> s_;
};

}  // namespace mp::py_manager
