// mp::Manager: starts the server process (or joins a running server) and makes proxies.
#include <chrono>
#include <cstdio>

#include "manager_client.hpp"
#include "multiproc/context.hpp"
#include "multiproc/logging.hpp"
#include "multiproc/process.hpp"
#include "sys/random.hpp"

namespace mp::detail {

// The server process's target: listens, reports readiness (or why not) on `ready`, serves.
void manager_process_main(std::string address, std::string authkey, TypeRegistry types,
                          Connection ready) {
    std::optional<ManagerServer> server;
    try {
        // The program's own children hold its key: they are trusted with code (update_with).
        server.emplace(Address::parse(address), std::move(authkey), ManagerOptions{{}, true},
                       std::move(types));
    } catch (const std::exception& e) {
        ready.send_bytes(std::string("multiproc: the manager server could not listen: ") +
                         e.what());
        return;
    }
    ready.send_bytes(std::string_view("ok"));
    ready.close();
    server->serve_forever();
}

struct ManagerState {
    std::shared_ptr<ManagerClient> client;
    std::optional<Process> process;  // when this Manager started the server
    bool shut = false;
};

namespace {

std::string fresh_abstract_name() {
    unsigned char r[8];
    sys::random_bytes(r, sizeof r);
    char hex[17];
    for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", r[i]);
    return "@multiproc-manager-" + std::to_string(current_process().pid()) + "-" + hex;
}

void start(ManagerState& s, const Context& ctx, const TypeRegistry& types) {
    const std::string key = current_process().authkey();
    const std::string name = fresh_abstract_name();
    auto [reader, writer] = Pipe(false);
    s.process.emplace(ctx.Process(&manager_process_main, name, key, types, writer));
    s.process->set_daemon(true);  // never outlives the program
    s.process->start();
    writer.close();  // the child's copy stays: its end of file means the child is gone
    std::string answer;
    try {
        if (!reader.poll(std::chrono::seconds(60)))
            throw ProcessError("multiproc: the manager server did not start within 60 s");
        const auto b = reader.recv_bytes();
        answer.assign(reinterpret_cast<const char*>(b.data()), b.size());
    } catch (const EOFError&) {
        answer = "multiproc: the manager server process ended before it was ready";
    }
    if (answer != "ok") {
        s.process->kill();
        s.process->join();
        throw ProcessError(answer);
    }
    s.client = ManagerClient::for_server(Address::parse(name), key, {});
    log_lazily(LogLevel::info, [&] {
        return "manager server started (pid " + std::to_string(s.process->pid().value_or(0)) +
               ") at " + s.client->address.to_string();
    });
}

}  // namespace
}  // namespace mp::detail

namespace mp {

Manager::Manager() : Manager(get_context()) {}

Manager::Manager(const Context& ctx) : s_(std::make_shared<detail::ManagerState>()) {
    detail::start(*s_, ctx, {});
}

Manager Context::Manager() const { return mp::Manager(*this); }

Manager::Manager(std::shared_ptr<detail::ManagerState> s) noexcept : s_(std::move(s)) {}
Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&& o) noexcept {
    if (this != &o) {
        shutdown();
        s_ = std::move(o.s_);
    }
    return *this;
}
Manager::~Manager() {
    if (s_ && s_->process) shutdown();
}

Manager Manager::connect(const Address& address, std::optional<std::string> authkey,
                         ManagerOptions options) {
    auto s = std::make_shared<detail::ManagerState>();
    s->client =
        detail::ManagerClient::for_server(address, authkey ? *authkey : current_process().authkey(),
                                          options.auth);
    Encoder ping;
    ping(std::uint64_t{0}, std::string("count"));
    s->client->call(ping).get<std::uint64_t>();  // connects and authenticates now
    detail::log_lazily(LogLevel::info,
                       [&] { return "manager client connected to " + address.to_string(); });
    return Manager(std::move(s));
}

void Manager::shutdown() {
    if (!s_ || s_->shut) return;
    s_->shut = true;
    try {
        Encoder e;
        e(std::uint64_t{0}, std::string("shutdown"));
        s_->client->call(e).get<void>();
    } catch (const std::exception&) {
        // Already gone.
    }
    if (s_->process) {
        s_->process->join(std::chrono::seconds(5));
        if (!s_->process->exitcode()) {
            s_->process->kill();
            s_->process->join();
        }
        detail::log_lazily(LogLevel::info, [&] {
            return "manager server (pid " + std::to_string(s_->process->pid().value_or(0)) +
                   ") stopped";
        });
    }
}

const Address& Manager::address() const {
    if (!s_) throw UsageError("multiproc: the manager was moved from");
    return s_->client->address;
}

std::optional<int> Manager::pid() const {
    if (!s_ || !s_->process) return std::nullopt;
    auto p = s_->process->pid();
    return p ? std::optional<int>(static_cast<int>(*p)) : std::nullopt;
}

std::size_t Manager::object_count() const {
    if (!s_) throw UsageError("multiproc: the manager was moved from");
    Encoder e;
    e(std::uint64_t{0}, std::string("count"));
    return s_->client->call(e).get<std::uint64_t>();
}

void Manager::bind(const std::string& name, const BaseProxy& proxy) {
    if (!s_) throw UsageError("multiproc: the manager was moved from");
    Encoder e;
    e(std::uint64_t{0}, std::string("bind"), name, proxy.id());
    s_->client->call(e).get<void>();
}

detail::ProxyCore Manager::lookup_raw(const std::string& name) {
    if (!s_) throw UsageError("multiproc: the manager was moved from");
    Encoder e;
    e(std::uint64_t{0}, std::string("lookup"), name);
    const std::uint64_t id = s_->client->call(e).get<std::uint64_t>();
    return detail::ProxyCore(std::make_shared<detail::ProxyRef>(s_->client, id));
}

detail::TypeEntry& BaseManager::add_type(std::string name, detail::CodeRef construct,
                                         detail::CodeRef destroy) {
    types_.push_back(detail::TypeEntry{std::move(name), construct, destroy, {}});
    return types_.back();
}

Manager BaseManager::start() const { return start(get_context()); }

Manager BaseManager::start(const Context& ctx) const {
    auto s = std::make_shared<detail::ManagerState>();
    detail::start(*s, ctx, types_);
    return Manager(std::move(s));
}

ManagerServer BaseManager::server(const Address& address, std::string authkey,
                                  ManagerOptions options) const {
    return ManagerServer(address, std::move(authkey), options, types_);
}

detail::ProxyCore Manager::create_sized(std::string_view type, int n) {
    Encoder e;
    e(static_cast<std::int32_t>(n));
    return create_raw(type, e);
}

detail::ProxyCore Manager::create_raw(std::string_view type, const Encoder& args) {
    if (!s_) throw UsageError("multiproc: the manager was moved from");
    if (s_->shut) throw UsageError("multiproc: the manager was shut down");
    Encoder e;
    e(std::uint64_t{0}, std::string("create"), std::string(type));
    e.write_bytes(args.bytes().data(), args.bytes().size());
    const std::uint64_t id = s_->client->call(e).get<std::uint64_t>();
    auto ref = std::make_shared<detail::ProxyRef>(s_->client, id);
    ref->type = type;  // names the object on the timeline
    return detail::ProxyCore(std::move(ref));
}

}  // namespace mp
