// The proxies' side of the manager protocol: one client (a session) per server per process, with
// a pool of authenticated connections (one per thread that calls at the same time), and the
// references proxies hold.
#include <mutex>
#include <system_error>
#include <typeinfo>
#include <unordered_map>

#include "manager_client.hpp"

#include <chrono>

#include "demangle.hpp"
#include "manager_store.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/process.hpp"
#include "multiproc/synchronize.hpp"
#include "sys/random.hpp"
#include "trace_hook.hpp"

namespace mp::detail {

namespace {

int this_pid() { return static_cast<int>(current_process().pid()); }

[[noreturn]] void server_gone(const Address& a, const char* why) {
    throw EOFError("multiproc: the manager server at " + a.to_string() + " is gone (" + why + ")");
}

}  // namespace

ManagerClient::ManagerClient(Address a, std::string key, AuthOptions o)
    : address(std::move(a)), authkey(std::move(key)), auth(o), pid(this_pid()) {
    sys::random_bytes(&session, sizeof session);
    session |= 1;  // 0 means "no session" on the server
}

ManagerClient::~ManagerClient() {
    for (auto& c : idle_) c.close();
}

Connection ManagerClient::acquire() {
    {
        std::lock_guard lk(m_);
        if (!idle_.empty()) {
            Connection c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
    }
    Connection c;
    try {
        c = Client(address, authkey, auth);
    } catch (const std::system_error& e) {
        server_gone(address, e.what());
    }
    Encoder hello;
    hello(std::uint64_t{0}, std::string("hello"), session);
    exchange(c, hello).get<void>();
    return c;
}

ManagerReply ManagerClient::exchange(Connection& c, const Encoder& request) {
    ManagerReply r;
    try {
        c.send_bytes(std::span<const std::byte>(request.bytes()));
        r.bytes = c.recv_bytes();
    } catch (const EOFError&) {
        c.close();
        server_gone(address, "its connection closed");
    } catch (const std::system_error& e) {
        c.close();
        server_gone(address, e.what());
    }
    Decoder d(r.bytes);
    read_task_status(d);  // rethrows the server's exception
    r.offset = r.bytes.size() - d.remaining();
    return r;
}

ManagerReply ManagerClient::call(const Encoder& request) {
    Connection c = acquire();
    ManagerReply r;
    try {
        r = exchange(c, request);
    } catch (const EOFError&) {
        throw;  // the connection is closed, not returned
    } catch (...) {
        release(std::move(c));  // an error reply leaves the connection in step
        throw;
    }
    release(std::move(c));
    return r;
}

void ManagerClient::release(Connection c) {
    std::lock_guard lk(m_);
    idle_.push_back(std::move(c));
}

ManagerReply ManagerClient::call_local(ServerObject& object, const Encoder& request) {
    const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now - alive_checked_.load(std::memory_order_relaxed) > 1'000'000) {
        // The server never writes unprompted: an idle connection that is readable has ended.
        std::lock_guard lk(m_);
        if (!idle_.empty() && idle_.back().poll()) server_gone(address, "its connection closed");
        alive_checked_.store(now, std::memory_order_relaxed);
    }
    Decoder d(request.bytes());
    std::uint64_t id;
    std::string method;
    d(id, method);
    ManagerReply r;
    Encoder out;
    const auto ok = static_cast<std::uint8_t>(TaskStatus::ok);
    out.write_bytes(&ok, 1);
    object.call(method, d, out, CallContext{true, session});  // what it throws is the caller's
    r.bytes = std::move(out.bytes());
    r.offset = 1;
    return r;
}

std::shared_ptr<ServerObject> ManagerClient::attach(std::uint64_t id) {
    if (address.family() == Address::Family::tcp) return nullptr;  // descriptors cannot cross
    Connection c = acquire();
    Encoder e;
    e(id, std::string("attach"));
    std::optional<DictStore> store;
    try {
        c.send_bytes(std::span<const std::byte>(e.bytes()));
        store = c.recv<std::optional<DictStore>>();
    } catch (const DecodeError&) {
        release(std::move(c));  // an error reply: no shared memory for this object
        return nullptr;
    } catch (const EOFError&) {
        server_gone(address, "its connection closed");
    } catch (const std::system_error& x) {
        server_gone(address, x.what());
    }
    release(std::move(c));
    return store ? attach_dict(std::make_shared<DictStore>(std::move(*store))) : nullptr;
}

void ManagerClient::server_call(std::string_view method, std::uint64_t id) {
    Encoder e;
    e(std::uint64_t{0}, std::string(method), id);
    call(e).get<void>();
}

std::shared_ptr<ManagerClient> ManagerClient::for_server(const Address& a, const std::string& key,
                                                         AuthOptions o) {
    // One client per server and key in each process; a forked child's inherited entries
    // belong to its parent (their connections are the parent's sockets) and are replaced.
    static std::mutex m;
    static auto* clients = new std::unordered_map<std::string, std::weak_ptr<ManagerClient>>();
    const std::string name = a.to_string() + '\0' + key;
    std::lock_guard lk(m);
    auto& slot = (*clients)[name];
    auto c = slot.lock();
    if (!c || c->pid != this_pid()) {
        c = std::make_shared<ManagerClient>(a, key, o);
        slot = c;
    }
    return c;
}

// --- references -------------------------------------------------------------------------------

ProxyRef::~ProxyRef() {
    if (pid != this_pid() || !client) return;  // a fork child's copy never took this reference
    try {
        client->server_call("decref", id);
    } catch (...) {
        // The server is gone: nothing holds the object any more.
    }
}

ManagerClient& ProxyRef::here() {
    if (pid == this_pid()) return *client;
    // A fork child uses an inherited proxy: it takes its own reference, on its own connections.
    std::lock_guard lk(m);
    if (pid != this_pid()) {
        auto mine = ManagerClient::for_server(client->address, client->authkey, client->auth);
        mine->server_call("incref", id);
        client = std::move(mine);
        pid = this_pid();
    }
    return *client;
}

ServerObject* ProxyRef::local(ManagerClient& c) {
    if (!attach_tried.load(std::memory_order_acquire)) {
        std::lock_guard lk(m);
        if (!attach_tried.load(std::memory_order_relaxed)) {
            local_ = c.attach(id);
            attach_tried.store(true, std::memory_order_release);
        }
    }
    return local_.get();
}

namespace {

// One span for a proxy's call: its method, and the object's type as created ("dict"), else
// the class of its in-place view ("DictObject"), else "remote object".
void trace_manager_call(const ProxyRef& ref, const Encoder& request, const ServerObject* object,
                        std::uint64_t t0) {
    Decoder d(request.bytes());
    std::uint64_t id = 0;
    std::string method;
    d(id, method);
    std::string type = !ref.type.empty() ? ref.type
                       : object          ? demangle(typeid(*object).name())
                                         : "remote object";
    if (const auto colons = type.rfind("::"); colons != std::string::npos)
        type = type.substr(colons + 2);
    trace::record(trace::SpanEvent{0, "manager " + type + "." + method, "manager", t0,
                                   trace::now_ns(),
                                   "\"method\":" + trace::json_string(method) + ",\"type\":" +
                                       trace::json_string(type) + ",\"id\":" + std::to_string(id)});
}

}  // namespace

void put_package(Encoder& e, const std::vector<std::byte>& package) {
    e.write_size(package.size());
    e.write_bytes(package.data(), package.size());
}

Encoder ProxyCore::request(std::string_view method) const {
    Encoder e;
    e(id());
    e.write_size(method.size());
    e.write_bytes(method.data(), method.size());
    return e;
}

ManagerReply ProxyCore::call(const Encoder& request) const {
    if (!ref_)
        throw UsageError("multiproc: an empty manager proxy (default-constructed or moved from)");
    ManagerClient& c = ref_->here();
    ServerObject* object = ref_->local(c);
    const std::uint64_t t0 = trace::events_on() ? trace::now_ns() : 0;
    ManagerReply r = object ? c.call_local(*object, request) : c.call(request);
    if (t0) trace_manager_call(*ref_, request, object, t0);
    return r;
}

std::uint64_t ProxyCore::owner() const {
    // This process's session and a number for the calling thread.
    static std::atomic<std::uint64_t> threads{0};
    thread_local const std::uint64_t thread = ++threads;
    if (!ref_)
        throw UsageError("multiproc: an empty manager proxy (default-constructed or moved from)");
    return ref_->here().session ^ (thread << 32);
}

std::uint64_t ProxyCore::id() const noexcept { return ref_ ? ref_->id : 0; }

void ProxyCore::save(Encoder& e) const {
    if (!ref_) throw UsageError("multiproc: an empty manager proxy cannot be sent");
    ManagerClient& c = ref_->here();
    // A reference in transit, which the receiver adopts: the object lives until it arrives.
    Encoder lend;
    lend(std::uint64_t{0}, std::string("lend"), ref_->id);
    const auto token = c.call(lend).get<std::uint64_t>();
    e(c.address.to_string(), c.authkey, ref_->id, token);
}

void ProxyCore::load(Decoder& d) {
    std::string address, key;
    std::uint64_t id = 0, token = 0;
    d(address, key, id, token);
    auto client = ManagerClient::for_server(Address::parse(address), key, {});
    Encoder adopt;
    adopt(std::uint64_t{0}, std::string("adopt"), id, token);
    client->call(adopt).get<void>();
    ref_ = std::make_shared<ProxyRef>(std::move(client), id);
}

}  // namespace mp::detail

namespace mp {

bool BaseProxy::wait_call(std::string_view method, bool block, Timeout timeout) const {
    Encoder e = core_.request(method);
    e(core_.owner(), block, detail::timeout_ns(timeout));
    return core_.call(e).get<bool>();
}

void BaseProxy::owner_call(std::string_view method) const {
    Encoder e = core_.request(method);
    e(core_.owner());
    core_.call(e).get<void>();
}

std::size_t BarrierProxy::wait(Timeout timeout) {
    Encoder e = core_.request("wait");
    e(core_.owner(), true, detail::timeout_ns(timeout));
    try {
        return core_.call(e).get<std::uint64_t>();
    } catch (const EOFError&) {
        throw;
    } catch (const ProcessError& x) {
        // The server's BrokenBarrierError travels as an mp::ProcessError naming it.
        if (std::string_view(x.what()).starts_with("multiproc: BrokenBarrierError"))
            throw BrokenBarrierError(x.what());
        throw;
    }
}

// The proxies' calls that depend on no user type, compiled here once rather than in every
// program that includes multiproc/managers.hpp.
int SemaphoreProxy::get_value() const { return invoke<std::int32_t>("get_value"); }

void ConditionProxy::notify(int n) {
    Encoder e = core_.request("notify");
    e(core_.owner(), static_cast<std::int32_t>(n));
    core_.call(e).get<void>();
}

void EventProxy::set() { invoke<void>("set"); }
void EventProxy::clear() { invoke<void>("clear"); }
bool EventProxy::is_set() const { return invoke<bool>("is_set"); }

void BarrierProxy::reset() { invoke<void>("reset"); }
void BarrierProxy::abort() { invoke<void>("abort"); }
std::size_t BarrierProxy::parties() const { return invoke<std::uint64_t>("parties"); }
std::size_t BarrierProxy::n_waiting() const { return invoke<std::uint64_t>("n_waiting"); }
bool BarrierProxy::broken() const { return invoke<bool>("broken"); }

bool NamespaceProxy::contains(const std::string& name) const {
    return invoke<bool>("contains", name);
}
bool NamespaceProxy::erase(const std::string& name) { return invoke<bool>("erase", name); }

}  // namespace mp
