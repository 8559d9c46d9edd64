// The core every manager proxy shares (see multiproc/managers.hpp): the type-erased reference
// to a server object, how arguments travel (blobs), and BaseProxy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// How a manager server treats its clients.
struct ManagerOptions {
    /// Authentication options of the server's Listener (and of a client's connections).
    AuthOptions auth{};
    /// Clients may ship functions the server runs (update_with): only for clients trusted as
    /// much as this program. A Manager started by the program sets it; ManagerServer does not.
    bool trust_code = false;
};

namespace detail {

struct ProxyRef;

/// A reply from the server: the encoded result, after its status byte was checked.
struct ManagerReply {
    std::vector<std::byte> bytes;
    std::size_t offset = 0;
    /// Decodes the result as an R (void: checks that nothing came).
    template <class R>
    R get() const {
        Decoder d(std::span<const std::byte>(bytes.data() + offset, bytes.size() - offset));
        d.refuse_code();
        return decode_rest<R>(d);
    }
};

/// The type-erased core of every proxy: one reference to one object on a manager server.
class ProxyCore {
public:
    ProxyCore() = default;
    /// Adopts a reference.
    explicit ProxyCore(std::shared_ptr<ProxyRef> ref) noexcept : ref_(std::move(ref)) {}

    /// A request for `method` of this object; the caller appends the arguments.
    [[nodiscard]] Encoder request(std::string_view method) const;
    /// Sends a request and waits for its reply; rethrows the server's exception, mp::EOFError
    /// when the server is gone.
    [[nodiscard]] ManagerReply call(const Encoder& request) const;
    /// Names the calling thread of this process to the server (the owner of an RLock).
    [[nodiscard]] std::uint64_t owner() const;
    /// The object's id on its server (0 for an empty proxy).
    [[nodiscard]] std::uint64_t id() const noexcept;

    /// Codec hook: address, key and id; the receiver takes its own reference.
    void save(Encoder& e) const;
    /// Codec hook: connects to the server (once per process) and takes a reference.
    void load(Decoder& d);

    friend bool operator==(const ProxyCore& a, const ProxyCore& b) noexcept {
        return a.ref_ == b.ref_;
    }

private:
    std::shared_ptr<ProxyRef> ref_;
};

/// Appends v's encoding preceded by its length (how values travel: the server stores them
/// without knowing their type).
template <class T>
void put_blob(Encoder& e, const T& v) {
    auto& b = e.bytes();
    const std::size_t at = b.size();
    e.write_size(0);
    const std::size_t fds = e.fds().size();
    e(v);
    if (e.fds().size() != fds)
        throw UsageError(
            "multiproc: a value that carries a file descriptor cannot be stored in a manager");
    const std::uint64_t n = b.size() - at - sizeof(std::uint64_t);
    std::memcpy(b.data() + at, &n, sizeof n);
}

/// Appends a range's elements as a count and blobs.
template <class R>
void put_blobs(Encoder& e, const R& range) {
    std::uint64_t n = 0;
    for (const auto& x : range) {
        static_cast<void>(x);
        ++n;
    }
    e.write_size(n);
    for (const auto& x : range) put_blob(e, x);
}

/// The package update_with ships: thunk<F, TaskResult<V>, V> with f as target; the server appends the
/// current value's encoding as the argument, runs it, and stores what it returns.
template <class V, class F>
std::vector<std::byte> update_package(const F& f) {
    using T = call_traits<F, V>;
    static_assert(T::target_ok && T::invocable,
                  "multiproc: update_with needs a shippable function (a function pointer, a "
                  "captureless lambda, or a lambda whose captures are trivially copyable) callable "
                  "with the value");
    static_assert(std::is_convertible_v<typename T::result, V>,
                  "multiproc: update_with's function must return the new value");
    Encoder e;
    begin_call<&thunk<std::decay_t<F>, TaskResult<V>, V>>(e, f);
    return std::move(e.bytes());
}

/// A timeout as it travels: nanoseconds, -1 for none.
inline std::int64_t timeout_ns(Timeout t) noexcept {
    return t.is_forever() ? -1 : t.duration().count();
}

/// Writes a package as a blob.
void put_package(Encoder& e, const std::vector<std::byte>& package);

}  // namespace detail

/// A proxy's common part: a handle to one object on a manager server.
class BaseProxy {
public:
    /// The object's id on its server.
    [[nodiscard]] std::uint64_t id() const noexcept { return core_.id(); }
    /// Codec hook (a proxy crosses processes as address, key and id).
    void save(Encoder& e) const { core_.save(e); }
    /// Codec hook.
    void load(Decoder& d) { core_.load(d); }
    /// Two proxies are equal when they share one reference (copies of one another).
    friend bool operator==(const BaseProxy& a, const BaseProxy& b) noexcept {
        return a.core_ == b.core_;
    }

protected:
    BaseProxy() = default;
    explicit BaseProxy(detail::ProxyCore core) : core_(std::move(core)) {}
    template <class R, class... A>
    R invoke(std::string_view method, const A&... blobs) const {
        Encoder e = core_.request(method);
        (detail::put_blob(e, blobs), ...);
        return core_.call(e).template get<R>();
    }
    template <class R>
    R invoke_at(std::string_view method, std::int64_t index) const {
        Encoder e = core_.request(method);
        e(index);
        return core_.call(e).template get<R>();
    }
    template <class R, class T>
    R invoke_at(std::string_view method, std::int64_t index, const T& value) const {
        Encoder e = core_.request(method);
        e(index);
        detail::put_blob(e, value);
        return core_.call(e).template get<R>();
    }
    // A blocking call: the calling thread as owner, then whether to block and for how long;
    // returns whether it succeeded before the timeout.
    bool wait_call(std::string_view method, bool block, Timeout timeout) const;
    // A call with the calling thread as owner and no result.
    void owner_call(std::string_view method) const;
    detail::ProxyCore core_;
};

}  // namespace mp
