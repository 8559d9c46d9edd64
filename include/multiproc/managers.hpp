// multiproc managers: a server process that owns shared objects, and typed proxies to them
// (Python's multiprocessing.managers: SyncManager, BaseManager, proxies).
//
//   mp::Manager m;                                   // starts the server process
//   auto d = m.dict<std::string, int>();            // a proxy: cheap to copy, shippable
//   auto l = m.list<int>();
//   mp::Process p(worker, d, l); p.start(); p.join();  // the child changes the same objects
//   std::map<std::string, int> snapshot = d.copy();
//
// The server is a child process started with the Manager's start method (fork, spawn or
// forkserver); it listens on a Linux abstract socket (or, for serve_forever, at any
// mp::Address, TCP included) and authenticates every client with Python's HMAC challenge and the
// manager's authkey (by default current_process().authkey(), which every child of the program
// inherits). Each client connection is served by its own server thread, so a client blocked in a
// call does not stall the others.
//
// Proxies (DictProxy, ListProxy, NamespaceProxy, ValueProxy, ArrayProxy) are handles: copies in
// one process share one reference; a proxy that crosses to another process (a Process argument
// under any start method, a Pool task, a Queue item) travels as the server's address, the authkey
// and the object's id, and takes its own reference on arrival. The server frees an object when
// the last reference goes: when the last proxy of every process holding one is destroyed, or
// when the process holding it ends (a client's references die with its connections). Every
// proxy is safe to use from several threads (each call takes a connection of the process's pool
// for its duration).
//
// Values are stored on the server as their codec encoding: keys compare equal when their
// encodings are (ints, strings, tuples of them: as expected; -0.0 and 0.0 are different keys).
// A value that carries a file descriptor (a Connection, a Lock, ...) cannot be stored.
//
// Errors: an exception raised by the server for a call comes back as the same type
// (std::out_of_range for a missing key or an index out of range, DESIGN.md 6); a server that is
// gone makes every call fail at once with mp::EOFError (never a hang); an unknown object or
// method is an mp::ProcessError reply.
//
// Trust: the manager protocol carries no code identity unless the server trusts its clients
// (ManagerOptions::trust_code): a Manager started by this program trusts them (they prove they
// hold the program's key), a server made with ManagerServer does not unless told, and then
// refuses update_with (the one call that ships a function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "multiproc/detail/manager_proxy.hpp"
#include "multiproc/detail/manager_sync.hpp"
#include "multiproc/detail/manager_types.hpp"

namespace mp {

class Context;

/// A dict on the server (Python's DictProxy), keys K and values V as the codec encodes them.
/// Iteration order is insertion order, as Python's dict.
template <class K, class V>
class DictProxy : public BaseProxy {
public:
    DictProxy() = default;
    explicit DictProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// d[k] = v.
    void set(const K& k, const V& v) { invoke<void>("set", k, v); }
    /// d[k]; std::out_of_range when missing (Python's KeyError).
    [[nodiscard]] V get(const K& k) const { return invoke<V>("get", k); }
    /// d.get(k, default).
    [[nodiscard]] V get(const K& k, const V& fallback) const {
        return invoke<V>("get_or", k, fallback);
    }
    /// k in d.
    [[nodiscard]] bool contains(const K& k) const { return invoke<bool>("contains", k); }
    /// del d[k]; returns whether k was there.
    bool erase(const K& k) { return invoke<bool>("erase", k); }
    /// d.pop(k); std::out_of_range when missing.
    V pop(const K& k) { return invoke<V>("pop", k); }
    /// d.pop(k, default).
    V pop(const K& k, const V& fallback) { return invoke<V>("pop_or", k, fallback); }
    /// len(d).
    [[nodiscard]] std::size_t size() const { return invoke<std::uint64_t>("size"); }
    /// list(d.keys()).
    [[nodiscard]] std::vector<K> keys() const { return invoke<std::vector<K>>("keys"); }
    /// list(d.values()).
    [[nodiscard]] std::vector<V> values() const { return invoke<std::vector<V>>("values"); }
    /// list(d.items()).
    [[nodiscard]] std::vector<std::pair<K, V>> items() const {
        return invoke<std::vector<std::pair<K, V>>>("items");
    }
    /// d.update(pairs): any range of (key, value) pairs, a std::map among them.
    template <class R>
    void update(const R& pairs) {
        Encoder e = core_.request("update");
        std::uint64_t n = 0;
        for (const auto& kv : pairs) {
            static_cast<void>(kv);
            ++n;
        }
        e.write_size(n);
        for (const auto& [k, v] : pairs) {
            detail::put_blob(e, static_cast<const K&>(k));
            detail::put_blob(e, static_cast<const V&>(v));
        }
        core_.call(e).template get<void>();
    }
    /// d.setdefault(k, v): the value at k, inserting v first when k is missing.
    V setdefault(const K& k, const V& v) { return invoke<V>("setdefault", k, v); }
    /// d.clear().
    void clear() { invoke<void>("clear"); }
    /// A copy of the whole dict (std::map by default, or any map type M).
    template <class M = std::map<K, V>>
    [[nodiscard]] M copy() const {
        return invoke<M>("items");
    }
    /// Atomically d[k] = f(d[k]) on the server and returns the new value; when k is missing, f
    /// gets `initial`. f must be shippable (a function or a lambda with trivially copyable
    /// captures), and the server must trust code (ManagerOptions::trust_code).
    template <class F>
    V update_with(const K& k, const F& f, const V& initial = V{}) {
        Encoder e = core_.request("update_with");
        detail::put_blob(e, k);
        detail::put_blob(e, initial);
        detail::put_package(e, detail::update_package<V>(f));
        return core_.call(e).template get<V>();
    }
};

/// A list on the server (Python's ListProxy). Indexes may be negative, counting from the end.
template <class T>
class ListProxy : public BaseProxy {
public:
    ListProxy() = default;
    explicit ListProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// l.append(v).
    void append(const T& v) { invoke<void>("append", v); }
    /// l.extend(range).
    template <class R>
    void extend(const R& range) {
        Encoder e = core_.request("extend");
        detail::put_blobs(e, range);
        core_.call(e).template get<void>();
    }
    /// l[i]; std::out_of_range outside the list.
    [[nodiscard]] T get(std::int64_t i) const { return invoke_at<T>("get", i); }
    /// l[i] = v; std::out_of_range outside the list.
    void set(std::int64_t i, const T& v) { invoke_at<void>("set", i, v); }
    /// l.pop(i) (the last by default); std::out_of_range when empty or outside.
    T pop(std::int64_t i = -1) { return invoke_at<T>("pop", i); }
    /// l.insert(i, v) (clamped to the list, as Python).
    void insert(std::int64_t i, const T& v) { invoke_at<void>("insert", i, v); }
    /// len(l).
    [[nodiscard]] std::size_t size() const { return invoke<std::uint64_t>("size"); }
    /// l.clear().
    void clear() { invoke<void>("clear"); }
    /// list(l): a copy of the whole list.
    [[nodiscard]] std::vector<T> copy() const { return invoke<std::vector<T>>("copy"); }
};

/// Python's Namespace proxy: named attributes of any shippable type.
class NamespaceProxy : public BaseProxy {
public:
    NamespaceProxy() = default;
    explicit NamespaceProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// ns.name = v.
    template <class T>
    void set(const std::string& name, const T& v) {
        invoke<void>("set", name, v);
    }
    /// ns.name as a T; std::out_of_range when it has none (mp::DecodeError when it is no T).
    template <class T>
    [[nodiscard]] T get(const std::string& name) const {
        return invoke<T>("get", name);
    }
    /// hasattr(ns, name).
    [[nodiscard]] bool contains(const std::string& name) const;
    /// del ns.name; returns whether it was there.
    bool erase(const std::string& name);
};

/// One value on the server (Python's manager Value).
template <class T>
class ValueProxy : public BaseProxy {
public:
    ValueProxy() = default;
    explicit ValueProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// v.value.
    [[nodiscard]] T get() const { return invoke<T>("get"); }
    /// v.value (Python's spelling).
    [[nodiscard]] T value() const { return get(); }
    /// v.value = x.
    void set(const T& x) { invoke<void>("set", x); }
    /// Atomically value = f(value) on the server; returns the new value (see DictProxy).
    template <class F>
    T update_with(const F& f) {
        Encoder e = core_.request("update_with");
        detail::put_package(e, detail::update_package<T>(f));
        return core_.call(e).template get<T>();
    }
};

/// A fixed-size array on the server (Python's manager Array).
template <class T>
class ArrayProxy : public BaseProxy {
public:
    ArrayProxy() = default;
    explicit ArrayProxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// a[i]; std::out_of_range outside.
    [[nodiscard]] T get(std::int64_t i) const { return invoke_at<T>("get", i); }
    /// a[i] = v; std::out_of_range outside.
    void set(std::int64_t i, const T& v) { invoke_at<void>("set", i, v); }
    /// len(a).
    [[nodiscard]] std::size_t size() const { return invoke<std::uint64_t>("size"); }
    /// a[:]: a copy of the whole array.
    [[nodiscard]] std::vector<T> copy() const { return invoke<std::vector<T>>("copy"); }
};

namespace detail {
struct ManagerState;
struct ServerState;
}  // namespace detail

/// A manager (Python's SyncManager): a server process owning shared objects, and the factory
/// of proxies to them. RAII: the destructor shuts the server down (when this Manager started
/// it). Move-only.
class Manager {
public:
    /// Starts a server process with the default start method.
    Manager();
    /// Starts a server process with ctx's start method.
    explicit Manager(const Context& ctx);
    /// Joins a running server at `address` (Python's BaseManager.connect); the key defaults to
    /// current_process().authkey(). mp::AuthenticationError on a wrong key; the server is not
    /// shut down by this object.
    static Manager connect(const Address& address,
                           std::optional<std::string> authkey = std::nullopt,
                           ManagerOptions options = {});
    Manager(Manager&&) noexcept;
    Manager& operator=(Manager&&) noexcept;
    ~Manager();

    /// Stops the server (every proxy call then fails with mp::EOFError); idempotent. A
    /// connected (not started) Manager asks the server to stop.
    void shutdown();
    /// The server's address.
    [[nodiscard]] const Address& address() const;
    /// The server's pid when this Manager started it.
    [[nodiscard]] std::optional<int> pid() const;
    /// The number of objects the server holds (what reference counting left alive).
    [[nodiscard]] std::size_t object_count() const;

    /// A new empty dict.
    template <class K, class V>
    DictProxy<K, V> dict() {
        return DictProxy<K, V>(create_raw("dict", Encoder{}));
    }
    /// A new list holding `initial`.
    template <class T>
    ListProxy<T> list(const std::vector<T>& initial = {}) {
        Encoder e;
        detail::put_blobs(e, initial);
        return ListProxy<T>(create_raw("list", e));
    }
    /// A new empty namespace.
    NamespaceProxy Namespace() { return NamespaceProxy(create_raw("Namespace", Encoder{})); }
    /// A new value holding `initial`.
    template <class T>
    ValueProxy<T> Value(const T& initial = T{}) {
        Encoder e;
        detail::put_blob(e, initial);
        return ValueProxy<T>(create_raw("Value", e));
    }
    /// A new array holding `initial` (its size is fixed).
    template <class T>
    ArrayProxy<T> Array(const std::vector<T>& initial) {
        Encoder e;
        detail::put_blobs(e, initial);
        return ArrayProxy<T>(create_raw("Array", e));
    }
    /// A new array of n value-initialised elements.
    template <class T>
    ArrayProxy<T> Array(std::size_t n) {
        return Array<T>(std::vector<T>(n));
    }

    /// A new queue holding at most maxsize items (<= 0: unbounded).
    template <class T>
    QueueProxy<T> Queue(int maxsize = 0) {
        return QueueProxy<T>(create_sized("Queue", maxsize));
    }
    /// A new joinable queue holding at most maxsize items (<= 0: unbounded).
    template <class T>
    JoinableQueueProxy<T> JoinableQueue(int maxsize = 0) {
        return JoinableQueueProxy<T>(create_sized("JoinableQueue", maxsize));
    }
    /// A new lock.
    LockProxy Lock() { return LockProxy(create_raw("Lock", Encoder{})); }
    /// A new recursive lock.
    RLockProxy RLock() { return RLockProxy(create_raw("RLock", Encoder{})); }
    /// A new semaphore with value n.
    SemaphoreProxy Semaphore(int n = 1) { return SemaphoreProxy(create_sized("Semaphore", n)); }
    /// A new bounded semaphore with value (and bound) n.
    SemaphoreProxy BoundedSemaphore(int n = 1) {
        return SemaphoreProxy(create_sized("BoundedSemaphore", n));
    }
    /// A new condition variable (with its own recursive lock).
    ConditionProxy Condition() { return ConditionProxy(create_raw("Condition", Encoder{})); }
    /// A new event, not set.
    EventProxy Event() { return EventProxy(create_raw("Event", Encoder{})); }
    /// A new barrier for n parties.
    BarrierProxy Barrier(int parties) { return BarrierProxy(create_sized("Barrier", parties)); }

    /// A new object of a type registered with BaseManager::register_type, made on the server
    /// from args (which must have the types registered for its constructor).
    template <class T = void, class... A>
    Proxy<T> create(std::string_view type, const A&... args) {
        Encoder e;
        e(std::tuple<detail::stored_arg_t<A>...>(args...));
        return Proxy<T>(create_raw(type, e));
    }
    /// Gives an object a name on the server, which keeps it alive until the name is rebound
    /// (Python's registered shared objects, for clients of other programs).
    void bind(const std::string& name, const BaseProxy& proxy);
    /// A proxy to the object bound to `name`; std::out_of_range when nothing is.
    template <class P>
    P lookup(const std::string& name) {
        return P(lookup_raw(name));
    }

    /// Creates an object of a server type from its encoded constructor arguments.
    detail::ProxyCore create_raw(std::string_view type, const Encoder& args);
    /// The object bound to `name`.
    detail::ProxyCore lookup_raw(const std::string& name);

private:
    friend class BaseManager;
    Manager(std::shared_ptr<detail::ManagerState> s) noexcept;
    detail::ProxyCore create_sized(std::string_view type, int n);
    std::shared_ptr<detail::ManagerState> s_;
};

class PyShared;

/// A manager server in this process, for clients of other programs (Python's
/// `BaseManager(address, authkey).get_server().serve_forever()`). One address serves both
/// multiproc clients and Python ones (multiprocessing.managers; see register_py).
class ManagerServer {
public:
    /// Listens at `address` (TCP port 0 picks one: see address()); clients must hold `authkey`.
    ManagerServer(const Address& address, std::string authkey, ManagerOptions options = {},
                  detail::TypeRegistry types = {});
    ManagerServer(ManagerServer&&) noexcept;
    ManagerServer& operator=(ManagerServer&&) noexcept;
    ~ManagerServer();
    /// Where clients connect.
    [[nodiscard]] const Address& address() const;
    /// Serves clients until one calls shutdown() on its Manager (or the process ends); then
    /// ends the threads that served them (waiting up to 2 s for calls still blocked).
    void serve_forever();
    /// Serves `object` (an mp::PyQueue, PyDict, PyList: multiproc/manager_python.hpp) to Python
    /// clients under `name`: Python's `register(name, callable=lambda: object)`.
    void register_py(const std::string& name, const PyShared& object);

private:
    std::shared_ptr<detail::ServerState> s_;
};

/// A manager for user types (Python's BaseManager): register the types and the methods its
/// clients may call, then start() a server process (or serve() them in this process).
///
///   mp::BaseManager b;
///   b.register_type<Counter, int>("Counter").method<&Counter::inc>("inc");
///   mp::Manager m = b.start();
///   auto c = m.create<Counter>("Counter", 10);
///   int v = c.call<&Counter::inc>("inc", 1);
class BaseManager {
public:
    /// Registers T under `name`, made from constructor arguments of types A...; returns the
    /// registration to add methods to.
    template <class T, class... A>
    TypeRegistration<T> register_type(std::string name) {
        return TypeRegistration<T>(add_type(std::move(name),
                                            detail::code_ref(&detail::construct_object<T, A...>),
                                            detail::code_ref(&detail::destroy_object<T>)));
    }
    /// Starts a server process (with the built-in types and the registered ones) with the
    /// default start method.
    [[nodiscard]] Manager start() const;
    /// As start(), with ctx's start method.
    [[nodiscard]] Manager start(const Context& ctx) const;
    /// A server in this process at `address` with the registered types (serve_forever() it).
    [[nodiscard]] ManagerServer server(const Address& address, std::string authkey,
                                       ManagerOptions options = {}) const;

private:
    // Appends a type to types_ (out of line: no program compiles the vector's growth).
    detail::TypeEntry& add_type(std::string name, detail::CodeRef construct,
                                detail::CodeRef destroy);
    detail::TypeRegistry types_;
};

}  // namespace mp
