// The forkserver process and this program's connection to it. Protocol and lifetime: see
// forkserver.hpp.
#include "forkserver.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "forkserver_preload.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "owner_tid.hpp"
#include "popen.hpp"
#include "spawn.hpp"
#include "sys/child_fds.hpp"
#include "sys/exec.hpp"
#include "sys/io.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/pidfd.hpp"
#include "sys/process.hpp"
#include "sys/sigmask.hpp"
#include "sys/socket.hpp"
#include "sys/wait.hpp"

extern char** environ;

namespace mp::detail {
namespace {

constexpr int kControlFd = 3;
// argv[2] of a server whose LD_BIND_NOW was added by start_locked (and is to be removed).
constexpr const char* kAddedBindNow = "--bind-now-added";

// ---------------------------------------------------------------------------------------------
// The server side.

// In the server: a pidfd of the program (the server's parent), inherited by every child.
int g_program_pidfd = -1;

// Reads exactly n bytes from a stream socket, collecting descriptors; false at a clean EOF
// before the first byte, mp::EOFError on EOF in the middle.
bool recv_exact(int sock, void* buf, std::size_t n, std::vector<UniqueFd>& fds) {
    auto* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        std::size_t r = sys::recv_some(sock, p + got, n - got, fds);
        if (r == 0) {
            if (got == 0) return false;
            throw EOFError("multiproc: forkserver: truncated message");
        }
        got += r;
    }
    return true;
}

void send_i32(int sock, std::int32_t v, std::span<const int> fds = {}) {
    iovec iov{&v, sizeof v};
    sys::send_all(sock, &iov, 1, fds);
}

struct ServedChild {
    pid_t pid;
    UniqueFd reply;
    bool daemon;
};

// An allocator of pages that fork leaves out of the child (MADV_DONTFORK): the server's own
// bookkeeping, which its children never read. fork write-protects every private page the two
// processes then share, and the first write to each costs a page fault; pages that are not
// shared are not protected, so the server writes these freely between forks.
template <class T>
struct UnforkedAllocator {
    using value_type = T;
    UnforkedAllocator() noexcept = default;
    template <class U>
    UnforkedAllocator(const UnforkedAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        void* p = sys::map_unforked_pages(bytes(n));
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept { sys::unmap_pages(p, bytes(n)); }
    friend bool operator==(const UnforkedAllocator&, const UnforkedAllocator&) noexcept {
        return true;
    }

private:
    static std::size_t bytes(std::size_t n) noexcept {
        return (n * sizeof(T) + 4095) & ~std::size_t{4095};
    }
};

// What the server keeps between requests. Its children share every other page of it until one
// side writes the page: so between a fork and the next request the server touches little else
// (the child may still run then), and its child allocates nothing (its identity and target are
// built before the fork).
struct ServerState {
    std::vector<ServedChild, UnforkedAllocator<ServedChild>>
        children;  // capacity reserved before each fork
    std::vector<std::byte, UnforkedAllocator<std::byte>> buf =
        std::vector<std::byte, UnforkedAllocator<std::byte>>(std::size_t{64} << 10);  // requests
    PreparedChild last;  // the previous child's, freed at the next request
};

// The signal mask the server's children start with: the one the server was started with. The
// server blocks SIGCHLD (read through a signalfd) and SIGINT: Ctrl-C in a terminal reaches the
// whole process group, and the server is not the user's to interrupt (Python's forkserver
// ignores it); a child, which is, gets it back with the mask, and no pending signal (fork
// clears them). One system call, where restoring a disposition would take a second.
sigset_t g_child_mask;

// In the child, just after fork: the call's descriptors at 3.., the program's pidfd after
// them, and nothing else (close_range), then the shared child path. Hot, as every function a
// fork child runs (current_process.cpp): grouped in .text.hot, paged in together.
[[noreturn, gnu::hot]] void become_child(PreparedChild& child, std::vector<int>& fds) noexcept {
    // _Fork ran no pthread_atfork handler (see serve_request): the one whose state this
    // server can hold is the thread id cache.
    if (t_tid != 0) t_tid = 0;
    // SIGINT and SIGCHLD unblocked (see g_child_mask).
    sys::set_signal_mask(g_child_mask);
    // The call's, then the program's pidfd (-1 when there is none: its number is closed).
    sys::place_child_fds(fds);
    child.renumber_call_fds(3);
    run_prepared_child(child);
}

// True when the program closed its end of the control socket (a zero-length read is also what
// an empty message gives).
bool control_hung_up() {
    pollfd p{kControlFd, POLLIN, 0};
    return sys::poll_until(&p, 1, Deadline(Timeout(std::chrono::seconds(0)))) == 1 &&
           (p.revents & POLLHUP);
}

// The record of the request message of `got` bytes in st.buf (-2: its descriptors were
// truncated), with `fds` reduced to the reply socket and the call's; an exception when malformed.
ChildBootstrap read_request(ServerState& st, ssize_t got, std::vector<UniqueFd>& fds,
                            std::vector<std::byte>& stored) {
    auto& buf = st.buf;
    if (got < 0) throw DecodeError("multiproc: forkserver: too many descriptors");
    if (static_cast<std::size_t>(got) > buf.size())
        throw DecodeError("multiproc: forkserver: oversized request message");
    const ForkRequest r =
        parse_fork_request(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(got)),
                           fds.size());
    std::span<const std::byte> record = r.record;
    if (r.in_memfd) {
        if (sys::file_size(fds[1].get()) != r.length)
            throw DecodeError("multiproc: forkserver: request record of the wrong length");
        stored = read_bootstrap_file(fds[1].get(), r.length);
        record = stored;
    }
    ChildBootstrap b = decode_fork_record(record, r);
    fds.erase(fds.begin() + 1, fds.begin() + (r.in_memfd ? 2 : 1));
    return b;
}

// One request: read it, fork, answer with the pid and a pidfd. A malformed request is answered
// with -EBADMSG (when it brought something to answer on) and the server serves on.
[[gnu::hot, gnu::noinline]] bool serve_request(ServerState& st) {
    std::vector<UniqueFd> fds;
    // One message per request: one system call takes all of it. MSG_TRUNC: the length of the
    // message, even when it is longer than the buffer (it is then malformed, and gone).
    ssize_t got;
    try {
        got = sys::recv_once(kControlFd, st.buf.data(), st.buf.size(), fds, MSG_TRUNC);
    } catch (const ProcessError&) {
        got = -2;  // more descriptors than a message may carry
    }
    if (got == -1) throw_os_error("recvmsg", errno);
    if (got == 0 && fds.empty() && control_hung_up()) return false;
    std::vector<std::byte> stored;
    ChildBootstrap b;
    try {
        b = read_request(st, got, fds, stored);
    } catch (const std::exception&) {
        if (!fds.empty()) {
            // Without waiting: a hostile client's socket may never be read.
            std::int32_t v = -EBADMSG;
            iovec iov{&v, sizeof v};
            static_cast<void>(sys::send_once(fds.front().get(), &iov, 1, {}, MSG_DONTWAIT));
        }
        return true;
    }
    UniqueFd reply = std::move(fds.front());
    fds.erase(fds.begin());
    const bool daemon = b.daemon;
    const int n = static_cast<int>(fds.size());
    // Everything the fork would otherwise make either side allocate, before it.
    st.last.forget_call_fds();  // closed right after its fork
    st.last = PreparedChild();
    PreparedChild child =
        prepare_child(std::move(b), std::move(fds), true, g_program_pidfd >= 0 ? 3 + n : -1);
    // Where become_child moves them from: the call's descriptors, then the program's pidfd.
    std::vector<int> child_fds = child.call_fds();
    child_fds.push_back(g_program_pidfd);
    st.children.reserve(st.children.size() + 1);
    // _Fork, not fork: the pthread_atfork handlers exist to release locks that other threads
    // held, and this process has one thread and holds none between requests. fork() would
    // take and release every lock of the C library around the call (malloc, stdio, the dynamic
    // linker), writes that cost each side a copied page.
    const pid_t pid = sys::fork_without_handlers();
    if (pid == 0) {
        // The child must not keep the server's channels: close_range in become_child closes
        // the control socket, the signalfd and every reply socket.
        become_child(child, child_fds);
    }
    // The call's descriptors are the child's now. Closed by number: their owners are left
    // untouched until the next request (see ServerState).
    for (std::size_t i = 0; i + 1 < child_fds.size(); ++i) UniqueFd(child_fds[i]).reset();
    st.last = std::move(child);
    if (pid < 0) {
        send_i32(reply.get(), pid);  // -errno
        return true;
    }
    // Nobody else reaps our children, so the pid is still ours until we waitpid it.
    int pidfd = sys::pidfd_open_raw(pid);
    try {
        if (pidfd >= 0) send_i32(reply.get(), pid, std::span<const int>(&pidfd, 1));
        else send_i32(reply.get(), pidfd);
    } catch (const EOFError&) {
        // The client gave up on this child; it still runs, and is reaped below.
    }
    UniqueFd(pidfd).reset();  // closes it (nothing for -errno)
    st.children.push_back(ServedChild{pid, std::move(reply), daemon});  // capacity reserved
    return true;
}

// Reaps the children that have ended and sends each one's status. Stops once none is left to
// wait for (one waitpid fewer than waiting for ECHILD).
template <class Children>
void reap(Children& children) {
    while (!children.empty()) {
        int status = 0;
        const pid_t pid = sys::reap_any_nohang(status);
        if (pid <= 0) return;
        auto it = std::find_if(children.begin(), children.end(),
                               [pid](const ServedChild& c) { return c.pid == pid; });
        if (it == children.end()) continue;
        try {
            send_i32(it->reply.get(), status);
        } catch (const std::exception&) {
            // The client closed its end (its Process was closed or the program exited).
        }
        if (it != children.end() - 1) *it = std::move(children.back());
        children.pop_back();
    }
}

}  // namespace

ForkRequest parse_fork_request(std::span<const std::byte> msg, std::size_t nfds) {
    ForkRequestHead h;
    if (msg.size() < sizeof h) throw DecodeError("multiproc: forkserver: request too short");
    std::memcpy(&h, msg.data(), sizeof h);
    ForkRequest r;
    r.length = h.length;
    r.in_memfd = h.kind == kMemfdRequest;
    if ((h.kind != kInlineRequest && !r.in_memfd) || h.reserved != 0)
        throw DecodeError("multiproc: forkserver: not a request");
    if (h.length > kMaxBootstrap) throw DecodeError("multiproc: forkserver: oversized request");
    const std::size_t body = msg.size() - sizeof h;
    if (r.in_memfd ? body != 0 : body != h.length)
        throw DecodeError("multiproc: forkserver: request length does not match the message");
    const std::size_t fixed = r.in_memfd ? 2 : 1;  // the reply socket (and the memfd)
    if (nfds < fixed) throw DecodeError("multiproc: forkserver: request without its descriptors");
    r.record = msg.subspan(sizeof h);
    r.call_fds = nfds - fixed;
    return r;
}

ChildBootstrap decode_fork_record(std::span<const std::byte> record, const ForkRequest& r) {
    ChildBootstrap b = decode_bootstrap(record);
    if (b.nfds != r.call_fds)
        throw DecodeError("multiproc: forkserver: the call's descriptors do not match its record");
    return b;
}

void forkserver_main(int argc, char** argv) noexcept {
    ServerState st;
    int code = 0;
    try {
        // Our children must not inherit an LD_BIND_NOW the program never asked for (they may
        // exec programs of their own); the binding it bought us is done by now.
        const pid_t program = sys::parent_pid();  // before a preload, which may take long
        bool preload = false;
        for (int i = 2; i < argc; ++i) {
            if (std::strcmp(argv[i], kAddedBindNow) == 0) ::unsetenv("LD_BIND_NOW");
            if (std::strcmp(argv[i], kPreloadFlag) == 0) preload = true;
        }
        // Every child resolves its target through the module tables: build them once, here.
        warm_code_identities();
        prepare_child_path();
        // Before the program's pidfd and the signal mask: the preload runs as in a fresh
        // process, and nothing it leaves behind but memory reaches the children.
        if (preload) run_forkserver_preload(kControlFd);
        g_program_pidfd = sys::pidfd_open_raw(program);
        if (g_program_pidfd >= 0 && sys::parent_pid() != program)
            sys::exit_now(0);  // the program died first: nothing to serve
        g_child_mask = sys::block_signals({SIGCHLD, SIGINT});
        UniqueFd sfd = sys::make_signalfd(SIGCHLD);
        static_cast<void>(sys::set_cloexec(kControlFd, true));
        for (;;) {
            pollfd p[2] = {{kControlFd, POLLIN, 0}, {sfd.get(), POLLIN, 0}};
            sys::poll_until(p, 2, Deadline::never());
            if (p[1].revents) {
                // SIGCHLD is a standard signal: one pending instance at most, so one read
                // empties the signalfd; a child ending after it makes it readable again.
                sys::drain_signalfd(sfd.get());
                reap(st.children);
            }
            if (p[0].revents && !serve_request(st)) break;
        }
    } catch (const std::exception& e) {
        std::string msg = std::string("multiproc: forkserver: ") + e.what() + "\n";
        sys::write_stderr(msg);
        code = 1;
    }
    // The program is gone (or stopped us): no daemonic child may outlive it.
    for (auto& c : st.children)
        if (c.daemon) static_cast<void>(sys::send_signal(c.pid, SIGKILL));
    sys::exit_now(code);
}

// ---------------------------------------------------------------------------------------------
// The program side.

namespace {

struct Client {
    std::mutex m;
    pid_t owner = 0;  // the process these descriptors belong to (not a fork child of it)
    pid_t pid = 0;
    UniqueFd control;
    UniqueFd pidfd;
    bool atexit_registered = false;
};

// Never destroyed: stop_forkserver runs from atexit, after static destructors may have run.
Client& client() {
    static Client* c = new Client;
    return *c;
}

// A child forked (start method fork) from this program must not share the server: its requests
// would interleave with ours on one socket. It forgets it (closing only its own copies) and
// starts its own server if it needs one. Runs in the fork child, where only this thread exists.
void forget_locked(Client& c) noexcept {
    c.control.reset();
    c.pidfd.reset();
    c.pid = 0;
    c.owner = sys::current_pid();
}

void forget_after_fork() noexcept {
    Client& c = client();
    new (&c.m) std::mutex;  // another thread may have held it at fork time
    forget_locked(c);
}

void stop_at_exit() noexcept { stop_forkserver(); }

// Under c.m: forgets a server that is dead or dying (its control socket closed), reaps it and
// returns its wait status (0 when the wait failed).
int discard_locked(Client& c) noexcept {
    c.control.reset();
    const int status = std::max(0, sys::wait_pid(c.pid));
    c.pidfd.reset();
    c.pid = 0;
    return status;
}

// Under c.m: closes our end and reaps the server (SIGKILL if it does not leave promptly).
void stop_locked(Client& c) noexcept {
    if (c.owner != sys::current_pid() || c.pid == 0) return;
    c.control.reset();
    if (c.pidfd && !sys::wait_readable(c.pidfd.get(), Deadline(Timeout(std::chrono::seconds(5)))))
        static_cast<void>(sys::send_signal(c.pid, SIGKILL));
    static_cast<void>(sys::wait_pid(c.pid));
    log_lazily(LogLevel::info,
               [&] { return "forkserver (pid " + std::to_string(c.pid) + ") stopped"; });
    c.pidfd.reset();
    c.pid = 0;
}

// Under c.m: the exit status of a server that has died (reaped now), or -1 if it still runs.
int reap_if_dead(Client& c) {
    if (c.pid == 0) return -1;
    if (!sys::wait_readable(c.pidfd.get(), Deadline(Timeout(std::chrono::seconds(0))))) return -1;
    const int status = std::max(0, sys::wait_pid(c.pid));  // 0 when the wait failed
    c.control.reset();
    c.pidfd.reset();
    c.pid = 0;
    return status;
}

[[noreturn]] void server_failed(int status, pid_t pid,
                                const char* when = "before it could start the child") {
    const int code = sys::exit_code_of(status);
    if (code == kMissingInitExitCode)
        throw ProcessError(missing_init_message("forkserver process", pid));
    std::string how = code < 0 ? "was killed by signal " + std::to_string(-code)
                               : "exited with code " + std::to_string(code);
    throw ProcessError("multiproc: the forkserver (pid " + std::to_string(pid) + ") " + how + " " +
                       when);
}

void start_locked(Client& c) {
    auto pair = sys::make_socketpair(SOCK_SEQPACKET);
    // The server binds every symbol at load (see forkserver.hpp): its environment is ours plus
    // LD_BIND_NOW=1, unless we have one already.
    static char bind_now[] = "LD_BIND_NOW=1";
    std::vector<char*> env;
    bool added = true;
    for (char** e = environ; e && *e; ++e) {
        if (std::strncmp(*e, "LD_BIND_NOW=", 12) == 0) added = false;
        env.push_back(*e);
    }
    if (added) env.push_back(bind_now);
    env.push_back(nullptr);
    const bool preload = has_forkserver_preload();
    std::vector<char*> argv{const_cast<char*>(program_argv0()), const_cast<char*>(kForkServerFlag)};
    if (added) argv.push_back(const_cast<char*>(kAddedBindNow));
    if (preload) argv.push_back(const_cast<char*>(kPreloadFlag));
    argv.push_back(nullptr);
    const int fds[] = {pair.write.get()};
    const std::string program = get_executable();
    pid_t pid = sys::spawn_with_fds(program.c_str(), argv.data(), fds, env.data());
    pair.write.reset();  // the server's alone: its death must be an end of file for us
    // Only this program reaps the server, so the pid cannot be reused before the pidfd exists.
    c.pidfd = sys::pidfd_of_new_child(pid);
    c.pid = pid;
    c.control = std::move(pair.read);
    log_lazily(LogLevel::info,
               [&] { return "forkserver started (pid " + std::to_string(pid) + ")"; });
    if (!c.atexit_registered) {
        c.atexit_registered = true;
        std::atexit(stop_at_exit);
        sys::on_fork_child(forget_after_fork);
    }
    if (!preload) return;
    // The first start() that needs the server waits for the preload: its exception (or the
    // server's death while running it) is that start()'s error, never a hang of later ones.
    try {
        send_forkserver_preload(c.control.get());
    } catch (const EOFError&) {
        const pid_t dead = c.pid;
        server_failed(discard_locked(c), dead,
                      "while running its preload (mp::set_forkserver_preload)");
    } catch (...) {
        discard_locked(c);
        throw;
    }
}

}  // namespace

ServerChild forkserver_fork(std::span<const std::byte> bootstrap, std::span<const int> fds) {
    auto reply = sys::make_socketpair();
    std::vector<int> all{reply.write.get()};
    ForkRequestHead head{kInlineRequest, 0, bootstrap.size()};
    UniqueFd memfd;
    if (bootstrap.size() > kInlineRecord) {
        head.kind = kMemfdRequest;
        memfd = sys::make_memfd("multiproc-forkserver-request", 0);
        sys::write_all(memfd.get(), bootstrap.data(), bootstrap.size());
        all.push_back(memfd.get());
        bootstrap = {};
    }
    all.insert(all.end(), fds.begin(), fds.end());
    Client& c = client();
    pid_t server = 0;
    {
        std::lock_guard lk(c.m);
        if (c.owner != sys::current_pid())
            forget_locked(c);  // first use, or a fork child (belt and braces)
        // A server that died since the last request is noticed by the send below (EPIPE: no
        // other process holds its end), which restarts it: no poll of its pidfd first.
        for (int attempt = 0;; ++attempt) {
            if (c.pid == 0) start_locked(c);
            iovec iov[2] = {{&head, sizeof head},
                            {const_cast<std::byte*>(bootstrap.data()), bootstrap.size()}};
            try {
                sys::send_all(c.control.get(), iov, 2, all);
                break;
            } catch (const EOFError&) {
                // The server died since we last used it: restart it once and resend (it
                // cannot have seen any of this request). A server that ended because the
                // program lacks mp::init would only end again: that is the error to report.
                const pid_t dead = c.pid;
                const int status = discard_locked(c);
                if (attempt > 0 || sys::exit_code_of(status) == kMissingInitExitCode)
                    server_failed(status, dead);
            }
        }
        server = c.pid;
    }
    reply.write.reset();
    std::vector<UniqueFd> got;
    std::int32_t pid = 0;
    if (!recv_exact(reply.read.get(), &pid, sizeof pid, got)) {
        std::lock_guard lk(c.m);
        if (c.pid == server) {
            // EOF before an answer: the server is dead or dying; wait for it to be gone.
            static_cast<void>(sys::wait_readable(c.pidfd.get(),
                                                 Deadline(Timeout(std::chrono::seconds(5)))));
            int status = reap_if_dead(c);
            if (status >= 0) server_failed(status, server);
        }
        throw ProcessError(
            "multiproc: the forkserver closed the connection before starting the child");
    }
    if (pid == -EBADMSG)
        throw ProcessError("multiproc: the forkserver refused a malformed request");
    if (pid < 0) throw_os_error("fork (in the forkserver)", -pid);
    if (got.empty()) throw ProcessError("multiproc: the forkserver sent no pidfd for the child");
    log_lazily(LogLevel::debug, [&] {
        return "forkserver (pid " + std::to_string(server) + ") forked child pid " +
               std::to_string(pid) + " (request of " + std::to_string(bootstrap.size()) + " bytes)";
    });
    return ServerChild{pid, std::move(got.front()), std::move(reply.read)};
}

int forkserver_pid() noexcept {
    Client& c = client();
    std::lock_guard lk(c.m);
    return c.owner == sys::current_pid() ? c.pid : 0;
}

void forkserver_send_raw(std::span<const std::byte> msg, std::span<const int> fds) {
    Client& c = client();
    std::lock_guard lk(c.m);
    if (c.owner != sys::current_pid()) forget_locked(c);
    if (c.pid == 0) start_locked(c);
    iovec iov{const_cast<std::byte*>(msg.data()), msg.size()};
    if (sys::send_once(c.control.get(), &iov, 1, fds, 0) < 0) throw_os_error("sendmsg", errno);
}

void stop_forkserver() noexcept {
    Client& c = client();
    std::lock_guard lk(c.m);
    stop_locked(c);
}

}  // namespace mp::detail
