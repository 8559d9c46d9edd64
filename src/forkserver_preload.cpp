// The forkserver's preload: kept here in the program, sent to each server it starts, run there
// once. Protocol: forkserver_preload.hpp.
#include "forkserver_preload.hpp"

#include <cstring>
#include <mutex>
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

void run_forkserver_preload(int control) noexcept {
    std::string failure;
    try {
        std::vector<UniqueFd> fds;
        ForkRequestHead head{};
        const ssize_t got = sys::recv_once(control, &head, sizeof head, fds, MSG_TRUNC);
        if (got != static_cast<ssize_t>(sizeof head) || head.kind != kPreloadRequest ||
            head.reserved != 0 || fds.empty() || head.length > kMaxBootstrap ||
            sys::file_size(fds[0].get()) != head.length)
            throw DecodeError("multiproc: forkserver: malformed preload message");
        // Empty: the preload was cleared between the server's start and this message.
        if (head.length != 0) {
            const std::vector<std::byte> call = read_bootstrap_file(fds[0].get(), head.length);
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
