// mp::py_manager::Client: connections to a Python manager server, as Python's BaseManager and
// BaseProxy make them (Lib/multiprocessing/managers.py: dispatch, _create, _connect, _decref).
#include "py_manager_client.hpp"

#include <string>
#include <system_error>
#include <utility>

#include "multiproc/errors.hpp"
#include "sys/process.hpp"

namespace mp::py_manager {

namespace detail {

namespace {

int this_pid() noexcept { return static_cast<int>(sys::current_pid()); }

[[noreturn]] void gone(const ClientState& s, const char* why) {
    throw EOFError("the Python manager server at " + s.address.to_string() + " is gone (" + why +
                   ")");
}

// A new authenticated connection. Before connect() succeeded a refused connection is the
// caller's std::system_error (a wrong address) and a failed handshake a wrong key; afterwards
// the key is known to be right, so either means that the server went away (a server killed
// while it answers a challenge closes the connection in the middle of the handshake).
Connection open(ClientState& s) {
    try {
        return mp::Client(s.address, s.authkey, s.auth);
    } catch (const std::system_error& e) {
        if (s.connected.load()) gone(s, e.what());
        throw;
    } catch (const AuthenticationError& e) {
        if (s.connected.load()) gone(s, e.what());
        throw;
    }
}

// One request and its reply, undecoded meaning but decoded pickle. A channel that fails is a
// server that is gone (killed mid-call included: the kernel closes its sockets, so the read
// ends at once).
py::object exchange(ClientState& s, Connection& c, const std::vector<std::byte>& request) {
    try {
        c.send_bytes(request);
        return pickle::loads(c.recv_bytes());
    } catch (const EOFError& e) {
        gone(s, e.what());
    } catch (const std::system_error& e) {
        gone(s, e.what());
    }
}

// A connection served by a server thread: an idle one, else a new one handed over with
// accept_connection (Python's BaseProxy._connect), one per thread calling at the same time.
Connection acquire(const std::shared_ptr<ClientState>& s) {
    {
        std::lock_guard lk(s->m);
        if (s->pid != this_pid()) {
            // A fork child: the inherited sockets are the parent's conversations.
            for (Connection& c : s->idle) c.close();
            s->idle.clear();
            s->pid = this_pid();
        }
        if (!s->idle.empty()) {
            Connection c = std::move(s->idle.back());
            s->idle.pop_back();
            return c;
        }
    }
    Connection c = open(*s);
    const std::string name = "multiproc-" + std::to_string(this_pid());
    interpret(s, exchange(*s, c, request(std::monostate{}, "accept_connection", name)));
    return c;
}

void release(ClientState& s, Connection c) {
    std::lock_guard lk(s.m);
    if (s.pid == this_pid()) s.idle.push_back(std::move(c));
}

}  // namespace

ClientState::ClientState(Address a, std::string key, AuthOptions o)
    : address(std::move(a)), authkey(std::move(key)), auth(o), pid(this_pid()) {}

Reply call(const std::shared_ptr<ClientState>& s, const std::vector<std::byte>& request) {
    Connection c = acquire(s);
    py::object reply;
    try {
        reply = exchange(*s, c, request);
    } catch (...) {
        c.close();  // a connection whose reply did not decode is not reused
        throw;
    }
    release(*s, std::move(c));
    return interpret(s, reply);
}

py::object dispatch(ClientState& s, const std::vector<std::byte>& request) {
    Connection c = open(s);
    const py::object reply = exchange(s, c, request);
    c.close();
    Reply r = interpret(nullptr, reply);
    if (r.proxy) unexpected("a call to the server", r.value);
    return r.value;
}

std::shared_ptr<ProxyRef> adopt(const std::shared_ptr<ClientState>& c, std::string type_id,
                                const py::object& created) {
    // create answers (ident, exposed): ident a str, exposed a tuple of method names.
    const auto fail = [&] { unexpected("create", created); };
    if (created.kind() != py::kind::tuple && created.kind() != py::kind::list) fail();
    const auto& parts = created.as_sequence();
    if (parts.size() != 2 || parts[0].kind() != py::kind::str) fail();
    if (parts[1].kind() != py::kind::tuple && parts[1].kind() != py::kind::list) fail();
    std::vector<std::string> exposed;
    for (const py::object& m : parts[1].as_sequence()) {
        if (m.kind() != py::kind::str) fail();
        exposed.push_back(m.as_str());
    }
    return std::make_shared<ProxyRef>(c, parts[0].as_str(), std::move(type_id), std::move(exposed));
}

ProxyRef::ProxyRef(std::shared_ptr<ClientState> c, std::string i, std::string t,
                   std::vector<std::string> e)
    : client(std::move(c)), id(std::move(i)), type_id(std::move(t)), exposed(std::move(e)),
      pid(this_pid()) {}

ProxyRef::~ProxyRef() {
    if (!client || pid != this_pid()) return;  // a fork child's copy never owned the reference
    try {
        dispatch(*client, request(std::monostate{}, "decref", id));
    } catch (...) {
        // As Python's BaseProxy._decref: a server that is gone has nothing left to release.
    }
}

}  // namespace detail

Client::Client(const Address& address, std::string authkey, AuthOptions auth)
    : s_(std::make_shared<detail::ClientState>(address, std::move(authkey), auth)) {}

void Client::connect() {
    detail::dispatch(*s_, detail::request(std::monostate{}, "dummy"));
    s_->connected = true;
}

std::size_t Client::number_of_objects() const {
    return pickle::detail::convert<std::size_t>(
        detail::dispatch(*s_, detail::request(std::monostate{}, "number_of_objects")));
}

void Client::shutdown() const {
    detail::dispatch(*s_, detail::request(std::monostate{}, "shutdown"));
}

const Address& Client::address() const noexcept { return s_->address; }

}  // namespace mp::py_manager
