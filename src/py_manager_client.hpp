// A client of one Python manager server (src/py_manager_client.cpp) and the reading of its
// replies (src/py_manager_reply.cpp).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "multiproc/py_manager.hpp"

namespace mp::py_manager::detail {

/// What copies of one Client share: where the server is, the key, and idle connections that
/// a server thread already serves (accept_connection was sent on each).
struct ClientState {
    ClientState(Address a, std::string key, AuthOptions o);

    const Address address;
    const std::string authkey;
    const AuthOptions auth;
    std::mutex m;
    std::vector<Connection> idle;  ///< guarded by m
    int pid;                       ///< the process whose connections idle holds; guarded by m
    std::atomic<bool> connected{false};
};

/// A reply (kind, result) read: '#RETURN' is a value, '#PROXY' a new reference; the error kinds
/// are thrown as the matching C++ exception; anything else is mp::DecodeError.
Reply interpret(const std::shared_ptr<ClientState>& c, const py::object& reply);

}  // namespace mp::py_manager::detail
