// The forkserver's preload: kept here in the program, sent to each server it starts, run there
// once. Protocol: forkserver_preload.hpp.
#include "forkserver_preload.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "demangle.hpp"
#include "forkserver.hpp"
#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "popen.hpp"
#include "spawn.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/process.hpp"
#include "sys/socket.hpp"

namespace mp::detail {
namespace {

// The preload's bytes and owned duplicates of its descriptors: the argument copies that
// package_call borrowed them from are gone once set_forkserver_preload returns.
struct Preload {
    std::mutex m;
    std::vector<std::byte> bytes;
    std::vector<UniqueFd> fds;
    bool set = false;
};

// Never destroyed: a forkserver may be started from an atexit handler's Process.
Preload& preload() {
    static Preload* p = new Preload;
    return *p;
}

// The longest answer the server sends (an exception's type and what(), cut to fit).
constexpr std::size_t kMaxAnswer = 4096;

}  // namespace

void set_forkserver_preload_call(std::optional<ShippedCall> call) {
    std::vector<UniqueFd> fds;
    if (call)
        for (int fd : call->fds) fds.push_back(UniqueFd::dup_of(fd));
    Preload& p = preload();
    std::lock_guard lk(p.m);
    p.set = call.has_value();
    p.bytes = call ? std::move(call->bytes) : std::vector<std::byte>{};
    p.fds = std::move(fds);  // the previous preload's descriptors are closed as this returns
}

bool has_forkserver_preload() {
    Preload& p = preload();
    std::lock_guard lk(p.m);
    return p.set;
}

void send_forkserver_preload(int control) {
    {
        Preload& p = preload();
        std::lock_guard lk(p.m);
        UniqueFd memfd = sys::make_memfd("multiproc-forkserver-preload", 0);
        sys::write_all(memfd.get(), p.bytes.data(), p.bytes.size());
        std::vector<int> fds{memfd.get()};
        for (const UniqueFd& fd : p.fds) fds.push_back(fd.get());
        ForkRequestHead head{kPreloadRequest, 0, p.bytes.size()};
        iovec iov{&head, sizeof head};
        sys::send_all(control, &iov, 1, fds);
    }
    char answer[kMaxAnswer];
    std::vector<UniqueFd> none;
    const ssize_t n = sys::recv_once(control, answer, sizeof answer, none, 0);
    if (n < 0) throw_os_error("recvmsg (forkserver preload)", errno);
    if (n == 0) throw EOFError("multiproc: the forkserver ended while running its preload");
    if (answer[0] == 'K') return;
    throw ProcessError("multiproc: the forkserver's preload function threw " +
                       std::string(answer + 1, static_cast<std::size_t>(n - 1)));
}

std::uint64_t parse_preload_request(std::span<const std::byte> msg, std::size_t nfds) {
    ForkRequestHead h;
    if (msg.size() != sizeof h)
        throw DecodeError("multiproc: forkserver: a preload message of the wrong size");
    std::memcpy(&h, msg.data(), sizeof h);
    if (h.kind != kPreloadRequest || h.reserved != 0)
        throw DecodeError("multiproc: forkserver: not a preload message");
    if (nfds == 0) throw DecodeError("multiproc: forkserver: a preload message without its memfd");
    if (h.length > kMaxBootstrap) throw DecodeError("multiproc: forkserver: oversized preload");
    return h.length;
}

void run_forkserver_preload(int control) noexcept {
    std::string failure;
    try {
        std::vector<UniqueFd> fds;
        std::byte msg[sizeof(ForkRequestHead) + 1];  // one byte more: a longer message is bad
        const ssize_t got = sys::recv_once(control, msg, sizeof msg, fds, 0);
        if (got < 0) throw_os_error("recvmsg (forkserver preload)", errno);
        const std::uint64_t length =
            parse_preload_request(std::span<const std::byte>(msg, static_cast<std::size_t>(got)),
                                  fds.size());
        if (sys::file_size(fds[0].get()) != length)
            throw DecodeError("multiproc: forkserver: preload record of the wrong length");
        // Empty: the preload was cleared between the server's start and this message.
        if (length != 0) {
            const std::vector<std::byte> call = read_bootstrap_file(fds[0].get(), length);
            run_shipped_call(call, std::span<UniqueFd>(fds).subspan(1));
        }
    } catch (...) {
        try {
            const HandledException ex = describe_current_exception();
            failure = ex.type + (ex.has_what ? ": " + ex.what : "");
        } catch (...) {
            failure = "(an exception that could not be described)";
        }
        if (failure.empty()) failure = "(unknown type)";
        if (failure.size() >= kMaxAnswer) failure.resize(kMaxAnswer - 1);
    }
    // Children must not inherit what the call left in stdio's buffers: each would print it.
    flush_std_streams();
    const std::string answer = failure.empty() ? std::string("K") : "E" + failure;
    static_cast<void>(sys::send_record(control, answer.data(), answer.size()));
    if (!failure.empty()) sys::exit_now(1);
}

}  // namespace mp::detail
