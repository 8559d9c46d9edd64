// A process's client of one manager server (src/manager_client.cpp), and the reference a proxy
// holds.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "manager_protocol.hpp"
#include "multiproc/managers.hpp"

namespace mp::detail {

/// One process's session with one server: a pool of authenticated connections.
struct ManagerClient {
    ManagerClient(Address a, std::string key, AuthOptions o);
    ~ManagerClient();
    ManagerClient(const ManagerClient&) = delete;
    ManagerClient& operator=(const ManagerClient&) = delete;

    /// Sends a request on a connection of the pool and returns the reply (rethrows the
    /// server's exception; mp::EOFError when the server is gone).
    ManagerReply call(const Encoder& request);
    /// Runs a request on an attached object in this process (no round trip); first checks,
    /// at most once a millisecond, that the server still lives (mp::EOFError when not).
    ManagerReply call_local(ServerObject& object, const Encoder& request);
    /// A view of object `id` operating on its shared memory in place, or null when it has none
    /// (or the server is remote).
    std::shared_ptr<ServerObject> attach(std::uint64_t id);
    /// A call to the server itself taking an object id (incref, decref).
    void server_call(std::string_view method, std::uint64_t id);

    /// This process's client of the server at `a` with `key` (made on first use).
    static std::shared_ptr<ManagerClient> for_server(const Address& a, const std::string& key,
                                                     AuthOptions o);

    const Address address;
    const std::string authkey;
    const AuthOptions auth;
    const int pid;              ///< the process whose connections these are
    std::uint64_t session = 0;  ///< random, odd: names this client to the server

private:
    Connection acquire();
    void release(Connection c);
    ManagerReply exchange(Connection& c, const Encoder& request);

    std::mutex m_;
    std::vector<Connection> idle_;
    std::atomic<std::int64_t> alive_checked_{0};  // steady_clock ns of the last liveness check
};

/// One reference to one server object, shared by the copies of a proxy in one process.
struct ProxyRef {
    ProxyRef(std::shared_ptr<ManagerClient> c, std::uint64_t i)
        : client(std::move(c)), id(i), pid(client->pid) {}
    ~ProxyRef();
    ProxyRef(const ProxyRef&) = delete;
    ProxyRef& operator=(const ProxyRef&) = delete;

    /// The client to call through in this process (a fork child takes its own reference first).
    ManagerClient& here();
    /// The object's in-place view (attached at the first call), or null.
    ServerObject* local(ManagerClient& c);

    std::shared_ptr<ManagerClient> client;
    const std::uint64_t id;
    std::string type;  ///< as created ("dict", "list", ...): "" when received or looked up
    std::atomic<int> pid;
    std::mutex m;
    std::atomic<bool> attach_tried{false};
    std::shared_ptr<ServerObject> local_;
};

}  // namespace mp::detail
