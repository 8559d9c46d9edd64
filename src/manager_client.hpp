// A process's client of one manager server (src/manager_client.cpp), and the reference a proxy
// holds.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
    /// A call to the server itself taking an object id (incref, decref).
    void server_call(std::string_view method, std::uint64_t id);

    /// This process's client of the server at `a` with `key` (made on first use).
    static std::shared_ptr<ManagerClient> for_server(const Address& a, const std::string& key, AuthOptions o);

    const Address address;
    const std::string authkey;
    const AuthOptions auth;
    const int pid;               ///< the process whose connections these are
    std::uint64_t session = 0;   ///< random, odd: names this client to the server

private:
    Connection acquire();
    void release(Connection c);
    ManagerReply exchange(Connection& c, const Encoder& request);

    std::mutex m_;
    std::vector<Connection> idle_;
};

/// One reference to one server object, shared by the copies of a proxy in one process.
struct ProxyRef {
    ProxyRef(std::shared_ptr<ManagerClient> c, std::uint64_t i) : client(std::move(c)), id(i), pid(client->pid) {}
    ~ProxyRef();
    ProxyRef(const ProxyRef&) = delete;
    ProxyRef& operator=(const ProxyRef&) = delete;

    /// The client to call through in this process (a fork child takes its own reference first).
    ManagerClient& here();

    std::shared_ptr<ManagerClient> client;
    const std::uint64_t id;
    std::atomic<int> pid;
    std::mutex m;
};

}  // namespace mp::detail
