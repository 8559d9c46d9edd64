// The manager protocol between proxies and the server, and the interface of server objects.
//
// Every message is one Connection frame (Python's framing, over an authenticated Listener/Client
// connection). A request:
//
//   u64 object id (0: the server itself) | string method (u64 length + bytes) | arguments
//
// where a value travels as a blob (u64 length + its codec encoding: the server keeps values as
// bytes, without knowing their types) and an index as an i64. The reply is a status byte, then
// the result (ok) or the transported exception (error): the layout of a task result
// (detail::encode_task_error / read_task_status). A result made of several values is a u64
// count and their encodings one after another: the encoding of a std::vector (or a std::map for
// pairs), so the proxy decodes it directly.
//
// Methods of the server itself (object id 0): hello(u64 session) must be the first request of
// every connection (a session is one process's client: the references it takes are dropped
// when its last connection closes, so a client that dies leaks nothing); create(type, args) ->
// u64 id; incref(id); decref(id); count() -> u64; shutdown().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "multiproc/detail/manager_types.hpp"
#include "multiproc/reduction.hpp"

namespace mp::detail {

/// A value as the server keeps it: its codec encoding.
using Blob = std::string;

/// Reads a blob argument.
inline Blob read_blob(Decoder& d) {
    const std::size_t n = d.read_count(1);
    const auto b = d.take(n);
    return Blob(reinterpret_cast<const char*>(b.data()), b.size());
}

/// Appends a blob's encoding (its bytes, no length: it is already a value's encoding).
inline void write_raw(Encoder& e, const Blob& b) { e.write_bytes(b.data(), b.size()); }

/// What a server object's method may need besides its arguments.
struct CallContext {
    bool trust_code = false;    ///< the client may ship functions (update_with)
    std::uint64_t session = 0;  ///< the calling process's session
};

/// An object owned by a manager server. call() runs one method: it reads its arguments from
/// `args` (and must consume them all), writes its result's encoding to `out`, and throws for an
/// error reply (an unknown method is mp::ProcessError). Objects lock themselves: calls come from
/// one server thread per client connection.
class DictStore;

class ServerObject {
public:
    virtual ~ServerObject() = default;
    /// The shared memory a client on this machine may operate on in place (null: none).
    virtual std::shared_ptr<DictStore> shared_store() { return nullptr; }
    virtual void call(std::string_view method, Decoder& args, Encoder& out,
                      const CallContext& ctx) = 0;
};

/// Makes a server object of a type from its encoded constructor arguments.
using ServerFactory = std::unique_ptr<ServerObject> (*)(Decoder& args);

/// The factory of a built-in type ("dict", "list", "Array", "Namespace", "Value", ...), or null.
ServerFactory builtin_factory(std::string_view type);

/// The built-in types of each file (src/manager_*.cpp).
std::unique_ptr<ServerObject> make_dict(Decoder& args);
std::unique_ptr<ServerObject> make_list(Decoder& args);
/// A client's view of a dict whose store it attached (src/manager_dict.cpp).
std::shared_ptr<ServerObject> attach_dict(std::shared_ptr<DictStore> store);
std::unique_ptr<ServerObject> make_array(Decoder& args);
std::unique_ptr<ServerObject> make_namespace(Decoder& args);
std::unique_ptr<ServerObject> make_value(Decoder& args);

std::unique_ptr<ServerObject> make_queue(Decoder& args);
std::unique_ptr<ServerObject> make_joinable_queue(Decoder& args);
std::unique_ptr<ServerObject> make_lock(Decoder& args);
std::unique_ptr<ServerObject> make_rlock(Decoder& args);
std::unique_ptr<ServerObject> make_condition(Decoder& args);
std::unique_ptr<ServerObject> make_semaphore(Decoder& args);
std::unique_ptr<ServerObject> make_bounded_semaphore(Decoder& args);
std::unique_ptr<ServerObject> make_event(Decoder& args);
std::unique_ptr<ServerObject> make_barrier(Decoder& args);

/// Waits on cv until pred() holds: not at all unless block, at most ns nanoseconds unless
/// ns < 0. Returns pred()'s last value.
template <class P>
bool wait_until_true(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, bool block,
                     std::int64_t ns, P pred) {
    if (!block) return pred();
    if (ns < 0) {
        cv.wait(lk, pred);
        return true;
    }
    return cv.wait_for(lk, std::chrono::nanoseconds(ns), pred);
}

/// Reads (block, timeout ns).
inline std::pair<bool, std::int64_t> read_wait(Decoder& d) {
    bool block;
    std::int64_t ns;
    d(block, ns);
    return {block, ns};
}

/// Reads an i32 size argument (a Queue's maxsize, a Semaphore's value, a Barrier's parties).
inline std::int32_t read_int(Decoder& d) {
    std::int32_t n;
    d(n);
    d.finish();
    return n;
}

/// An object of a registered user type, made from its constructor arguments.
std::unique_ptr<ServerObject> make_user_object(const TypeEntry& type, Decoder& args);

/// Throws the mp::ProcessError of an unknown method.
[[noreturn]] void unknown_method(std::string_view type, std::string_view method);

/// Runs update_with's package on the current value `old` and returns the new value's encoding
/// (rethrows what the function threw; refuses when the client is not trusted with code).
Blob run_update(const Blob& package, const Blob& old, const CallContext& ctx);

/// Reads an update package argument.
inline Blob read_package(Decoder& d) { return read_blob(d); }

}  // namespace mp::detail
