// The manager server: accepts clients, authenticates each on its own thread, and serves its
// requests there (so a client blocked in a call, or stalling its handshake, holds only its own
// thread); owns the objects and counts the references each client session holds.
#include <atomic>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "manager_protocol.hpp"
#include "manager_py.hpp"
#include "manager_store.hpp"
#include "manager_wait.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/logging.hpp"
#include "multiproc/manager_python.hpp"
#include "multiproc/managers.hpp"
#include "sys/stream.hpp"

namespace mp::detail {

[[noreturn]] void unknown_method(std::string_view type, std::string_view method) {
    throw ProcessError("multiproc: the manager's " + std::string(type) + " has no method '" +
                       std::string(method) + "'");
}

ServerFactory builtin_factory(std::string_view type) {
    if (type == "dict") return make_dict;
    if (type == "list") return make_list;
    if (type == "Array") return make_array;
    if (type == "Namespace") return make_namespace;
    if (type == "Value") return make_value;
    if (type == "Queue") return make_queue;
    if (type == "JoinableQueue") return make_joinable_queue;
    if (type == "Lock") return make_lock;
    if (type == "RLock") return make_rlock;
    if (type == "Condition") return make_condition;
    if (type == "Semaphore") return make_semaphore;
    if (type == "BoundedSemaphore") return make_bounded_semaphore;
    if (type == "Event") return make_event;
    if (type == "Barrier") return make_barrier;
    return nullptr;
}

Blob run_update(const Blob& package, const Blob& old, const CallContext& ctx) {
    if (!ctx.trust_code)
        throw DecodeError(
            "multiproc: this manager server does not run functions its clients ship "
            "(update_with): it does not trust them with code (ManagerOptions::trust_code)");
    // The package is thunk<F, TaskResult<V>, V> and its target; the current value is its argument.
    std::vector<std::byte> call(package.size() + old.size());
    std::memcpy(call.data(), package.data(), package.size());
    std::memcpy(call.data() + package.size(), old.data(), old.size());
    Encoder result;
    run_shipped_task(call, {}, result);
    Decoder d(result.bytes());
    read_task_status(d);  // rethrows what the function threw
    const auto rest = d.take(d.remaining());
    return Blob(reinterpret_cast<const char*>(rest.data()), rest.size());
}

struct ServerState {
    ServerState(const Address& a, std::string key, ManagerOptions o, TypeRegistry t)
        : listener(a, 128, std::nullopt,
                   AuthOptions{o.auth.digest, o.auth.handshake_timeout, o.trust_code}),
          authkey(std::move(key)), options(o), types(std::move(t)) {}

    struct Entry {
        std::shared_ptr<ServerObject> object;
        std::int64_t refs = 0;
    };
    struct Session {
        int connections = 0;
        std::unordered_map<std::uint64_t, std::int64_t> refs;
    };

    Listener listener;
    std::string authkey;
    ManagerOptions options;
    const TypeRegistry types;
    std::atomic<bool> stopping{false};
    PyObjects py;  // what Python clients reach (src/manager_py.hpp)
    PyServerHooks py_hooks{[this] { return stopping.load(); },
                           [this] {
        stopping = true;
        listener.close();
                           },
                           [this] { return listener.address().to_string(); }};

    // The threads serving connections: each records its socket while it serves (so that the
    // end of serve_forever can shut the socket down and wake it) and marks itself done; finished
    // threads are joined at the next accept and at the end, so none outlives serve_forever.
    struct ConnThread {
        std::thread thread;
        int fd = -1;
        bool done = false;
    };
    std::mutex threads_m;
    std::condition_variable threads_cv;
    std::list<ConnThread> threads;

    std::mutex m;  // guards everything below
    std::unordered_map<std::uint64_t, Entry> objects;
    std::unordered_map<std::uint64_t, Session> sessions;
    // References in transit: taken by a sender's session when a proxy is encoded, moved to the
    // receiver's session when it is decoded (so the object cannot be freed in between).
    struct Loan {
        std::uint64_t session, id;
    };
    std::unordered_map<std::uint64_t, Loan> loans;
    std::unordered_map<std::string, std::uint64_t> names;  // bound objects, one reference each
    std::uint64_t next_id = 1;
    std::uint64_t next_loan = 1;

    std::unique_ptr<ServerObject> make(const std::string& type, Decoder& d) const {
        for (const TypeEntry& t : types)
            if (t.name == type) return make_user_object(t, d);
        const ServerFactory make = builtin_factory(type);
        if (!make) throw ProcessError("multiproc: the manager has no type '" + type + "'");
        return make(d);
    }

    std::shared_ptr<ServerObject> find(std::uint64_t id) {
        std::lock_guard lk(m);
        auto it = objects.find(id);
        if (it == objects.end())
            throw ProcessError("multiproc: the manager has no object with id " +
                               std::to_string(id) + " (freed, or never made)");
        return it->second.object;
    }

    // Drops n references of `session` to `id`; the object is destroyed outside the lock.
    std::shared_ptr<ServerObject> drop_locked(std::uint64_t id, std::int64_t n) {
        auto it = objects.find(id);
        if (it == objects.end()) return nullptr;
        it->second.refs -= n;
        if (it->second.refs > 0) return nullptr;
        auto dead = std::move(it->second.object);
        objects.erase(it);
        return dead;
    }

    void end_session(std::uint64_t session) {
        std::vector<std::shared_ptr<ServerObject>> dead;
        {
            std::lock_guard lk(m);
            auto it = sessions.find(session);
            if (it == sessions.end() || --it->second.connections > 0) return;
            for (const auto& [id, n] : it->second.refs) dead.push_back(drop_locked(id, n));
            sessions.erase(it);
            std::erase_if(loans, [&](const auto& kv) { return kv.second.session == session; });
        }
    }

    void server_call(std::string_view method, Decoder& d, Encoder& out, std::uint64_t& session) {
        if (method == "hello") {
            std::uint64_t s;
            d(s);
            d.finish();
            if (session != 0) throw ProcessError("multiproc: manager protocol: hello twice");
            std::lock_guard lk(m);
            ++sessions[s].connections;
            session = s;
            return;
        }
        if (session == 0) throw ProcessError("multiproc: manager protocol: a request before hello");
        if (method == "create") {
            std::string type;
            d(type);
            std::shared_ptr<ServerObject> obj = make(type, d);
            std::lock_guard lk(m);
            const std::uint64_t id = next_id++;
            objects[id] = Entry{std::move(obj), 1};
            ++sessions[session].refs[id];
            out(id);
        } else if (method == "incref" || method == "decref") {
            std::uint64_t id;
            d(id);
            d.finish();
            std::shared_ptr<ServerObject> dead;
            std::lock_guard lk(m);
            auto& mine = sessions[session].refs;
            if (method == "incref") {
                auto it = objects.find(id);
                if (it == objects.end())
                    throw ProcessError("multiproc: the manager has no object with id " +
                                       std::to_string(id));
                ++it->second.refs;
                ++mine[id];
            } else if (auto it = mine.find(id); it != mine.end()) {
                if (--it->second == 0) mine.erase(it);
                dead = drop_locked(id, 1);
            }
        } else if (method == "lend") {
            std::uint64_t id;
            d(id);
            d.finish();
            std::lock_guard lk(m);
            auto it = objects.find(id);
            if (it == objects.end())
                throw ProcessError("multiproc: the manager has no object with id " +
                                   std::to_string(id));
            ++it->second.refs;
            ++sessions[session].refs[id];
            const std::uint64_t token = next_loan++;
            loans[token] = Loan{session, id};
            out(token);
        } else if (method == "adopt") {
            std::uint64_t id, token;
            d(id, token);
            d.finish();
            std::lock_guard lk(m);
            auto loan = loans.find(token);
            auto it = objects.find(id);
            if (it == objects.end())
                throw ProcessError("multiproc: the manager has no object with id " +
                                   std::to_string(id));
            if (loan != loans.end() && loan->second.id == id) {
                // The lender's reference becomes ours.
                auto& theirs = sessions[loan->second.session].refs;
                if (--theirs[id] == 0) theirs.erase(id);
                loans.erase(loan);
            } else {
                ++it->second.refs;  // decoded twice, or the lender is gone: a reference of our own
            }
            ++sessions[session].refs[id];
        } else if (method == "bind") {
            std::string name;
            std::uint64_t id;
            d(name, id);
            d.finish();
            std::shared_ptr<ServerObject> dead;
            std::lock_guard lk(m);
            auto it = objects.find(id);
            if (it == objects.end())
                throw ProcessError("multiproc: the manager has no object with id " +
                                   std::to_string(id));
            ++it->second.refs;
            auto [slot, fresh] = names.try_emplace(name, id);
            if (!fresh) {
                dead = drop_locked(slot->second, 1);
                slot->second = id;
            }
        } else if (method == "lookup") {
            std::string name;
            d(name);
            d.finish();
            std::lock_guard lk(m);
            auto slot = names.find(name);
            if (slot == names.end())
                throw std::out_of_range("multiproc: no manager object is bound to '" + name + "'");
            ++objects.at(slot->second).refs;
            ++sessions[session].refs[slot->second];
            out(slot->second);
        } else if (method == "count") {
            d.finish();
            std::lock_guard lk(m);
            out(static_cast<std::uint64_t>(objects.size()));
        } else if (method == "shutdown") {
            d.finish();
            stopping = true;
        } else {
            unknown_method("server", method);
        }
    }

    std::vector<std::byte> handle(std::span<const std::byte> frame, std::uint64_t& session) {
        Encoder out;
        const auto ok = static_cast<std::uint8_t>(TaskStatus::ok);
        out.write_bytes(&ok, 1);
        try {
            Decoder d(frame);
            if (!options.trust_code) d.refuse_code();
            std::uint64_t id;
            std::string method;
            d(id, method);
            if (id == 0) {
                server_call(method, d, out, session);
            } else {
                if (session == 0)
                    throw ProcessError("multiproc: manager protocol: a request before hello");
                find(id)->call(method, d, out, CallContext{options.trust_code, session});
            }
        } catch (...) {
            out.bytes().clear();
            encode_task_error(out, std::current_exception());
        }
        return std::move(out.bytes());
    }

    // Answers an attach request (a client on this machine asks for a dict's shared memory) with
    // the store's handle, its descriptors beside the bytes; false for any other request, and
    // for a bad one (which handle() then answers with the error).
    bool answer_attach(Connection& c, std::span<const std::byte> frame, std::uint64_t session) {
        std::shared_ptr<DictStore> store;
        try {
            Decoder d(frame);
            d.refuse_code();
            std::uint64_t id;
            std::string method;
            d(id, method);
            if (method != "attach" || id == 0 || session == 0) return false;
            d.finish();
            store = find(id)->shared_store();
        } catch (...) {
            return false;
        }
        c.send(store ? std::optional<DictStore>(*store) : std::nullopt);
        return true;
    }

    // One client connection, on its own thread, until it closes, sends something that breaks
    // the framing, or the server stops. A first frame that is a pickle (PROTO, 0x80) comes from
    // a Python client (multiprocessing.managers); multiproc's first request (hello, object id 0)
    // starts with a zero byte.
    void serve(Connection& c) {
        try {
            authenticate_server(c, authkey, options.auth);
        } catch (...) {
            return;  // a wrong key or a stalled handshake costs only this thread
        }
        std::vector<std::byte> frame;
        try {
            frame = c.recv_bytes();
        } catch (...) {
            return;
        }
        if (!frame.empty() && frame[0] == std::byte{0x80}) {
            serve_python(c, std::move(frame), py, py_hooks);
            return;
        }
        std::uint64_t session = 0;
        RequestWait wait;
        for (;;) {
            try {
                if (!answer_attach(c, frame, session)) c.send_bytes(handle(frame, session));
            } catch (...) {
                break;  // the client is gone
            }
            wait.replied();
            if (stopping) {
                listener.close();  // ends serve_forever's accept
                break;
            }
            wait.before_recv(c);
            try {
                frame = c.recv_bytes();
            } catch (...) {
                break;  // the client is gone (or sent a frame that cannot be read)
            }
            wait.received();
        }
        if (session != 0) end_session(session);
    }

    // Starts a thread serving c.
    void start_thread(const std::shared_ptr<ServerState>& self, Connection c) {
        std::lock_guard lk(threads_m);
        auto slot = threads.emplace(threads.end());
        slot->fd = c.fileno();
        slot->thread = std::thread([self, slot, c = std::move(c)]() mutable {
            self->serve(c);
            {
                std::lock_guard lk(self->threads_m);
                slot->fd = -1;  // before the close: the number may be reused at once
                slot->done = true;
            }
            c.close();
            self->threads_cv.notify_all();
        });
    }

    // Joins the threads that are done; with `all`, first wakes the others (their sockets shut
    // down) and waits up to 2 s for them (a call blocked in an object, such as a Queue's get,
    // ends only when it returns: such a thread is left to finish alone).
    void join_threads(bool all) {
        std::list<ConnThread> finished;
        {
            std::unique_lock lk(threads_m);
            if (all) {
                for (auto& t : threads) {
                    if (t.fd < 0) continue;
                    try {
                        sys::shutdown_socket(t.fd, sys::Shutdown::both);
                    } catch (const std::exception&) {
                        // already closed by its peer
                    }
                }
                threads_cv.wait_for(lk, std::chrono::seconds(2), [&] {
                    return std::all_of(threads.begin(), threads.end(),
                                       [](const ConnThread& t) { return t.done; });
                });
            }
            for (auto it = threads.begin(); it != threads.end();) {
                auto next = std::next(it);
                if (it->done) finished.splice(finished.end(), threads, it);
                else if (all) it->thread.detach();
                it = next;
            }
        }
        for (auto& t : finished) t.thread.join();
    }
};

}  // namespace mp::detail

namespace mp {

ManagerServer::ManagerServer(const Address& address, std::string authkey, ManagerOptions options,
                             detail::TypeRegistry types)
    : s_(std::make_shared<detail::ServerState>(address, std::move(authkey), options,
                                               std::move(types))) {}
ManagerServer::ManagerServer(ManagerServer&&) noexcept = default;
ManagerServer& ManagerServer::operator=(ManagerServer&&) noexcept = default;
ManagerServer::~ManagerServer() = default;

const Address& ManagerServer::address() const {
    if (!s_) throw UsageError("multiproc: the manager server was moved from");
    return s_->listener.address();
}

void ManagerServer::serve_forever() {
    if (!s_) throw UsageError("multiproc: the manager server was moved from");
    detail::log_lazily(LogLevel::info,
                       [&] { return "manager serving at " + s_->listener.address().to_string(); });
    while (!s_->stopping) {
        Connection c;
        try {
            c = s_->listener.accept();
        } catch (const std::exception&) {
            if (s_->stopping || s_->listener.closed()) break;
            continue;  // a client that vanished between connect and accept
        }
        detail::log_lazily(LogLevel::debug,
                           [] { return std::string("manager accepted a client"); });
        s_->join_threads(false);
        s_->start_thread(s_, std::move(c));
    }
    s_->join_threads(true);
    detail::log_lazily(LogLevel::info, [] { return std::string("manager server shutting down"); });
}

void ManagerServer::register_py(const std::string& name, const PyShared& object) {
    if (!s_) throw UsageError("multiproc: the manager server was moved from");
    std::lock_guard lk(s_->py.m);
    s_->py.registered[name] = object.served();
}

}  // namespace mp
