#include "resource_tracker.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "sys/syscall.hpp"

namespace mp::detail::resource_tracker {
namespace {

constexpr std::size_t kMaxRecord = 512;

std::mutex g_mu;
int g_fd = -1;     // inherited by forked children along with the descriptor itself
pid_t g_pid = 0;

// A fork while another thread held g_mu would leave it locked forever in the child.
[[maybe_unused]] const bool g_atfork = [] {
    ::pthread_atfork(nullptr, nullptr, [] { new (&g_mu) std::mutex; });
    return true;
}();

// Runs in the tracker process: never returns.
[[noreturn]] void tracker_main(int rd, int startup) {
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Keep nothing of the program open but stderr: a pipe end held here would keep some other
    // reader of the program from ever seeing end-of-file.
    const int lo = std::min(rd, startup), hi = std::max(rd, startup);
    if (lo > 3) ::close_range(3, static_cast<unsigned>(lo - 1), 0);
    if (hi > lo + 1) ::close_range(static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0);
    ::close_range(static_cast<unsigned>(hi + 1), ~0U, 0);
    if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (null > 2) ::close(null);
    }
    (void)::chdir("/");
    const pid_t me = ::getpid();
    (void)sys::retry_eintr([&] { return ::write(startup, &me, sizeof me); });
    ::close(startup);

    std::vector<std::string> names;
    char buf[kMaxRecord];
    for (;;) {
        const ssize_t n = sys::retry_eintr([&] { return ::recv(rd, buf, sizeof buf, 0); });
        if (n <= 0) break;  // end of file: every process of the program is gone
        std::string name(buf + 1, static_cast<std::size_t>(n - 1));
        if (buf[0] == 'R') {
            names.push_back(std::move(name));
        } else if (buf[0] == 'U') {
            if (auto it = std::find(names.begin(), names.end(), name); it != names.end())
                names.erase(it);
        }
    }
    for (const auto& name : names) ::shm_unlink(("/" + name).c_str());
    ::_exit(0);
}

constexpr const char* kEnv = "MULTIPROC_RESOURCE_TRACKER";

// fork() without the pthread_atfork handlers; the child may only make system calls.
pid_t raw_fork() noexcept { return static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

void start_locked() {
    int sv[2];
    sys::check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
    UniqueFd ours(sv[1]), theirs(sv[0]);
    int p[2];
    sys::check(::pipe2(p, O_CLOEXEC), "pipe2");
    UniqueFd startup_rd(p[0]), startup_wr(p[1]);

    // Everything the children need is prepared here: between clone and exec they only make
    // system calls (no allocation, no locks), so any thread of a threaded program may start it.
    std::string var = std::string(kEnv) + "=" + std::to_string(theirs.get()) + ":" +
                      std::to_string(startup_wr.get());
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e)
        if (std::string_view(*e).substr(0, std::strlen(kEnv) + 1) != std::string(kEnv) + "=")
            envp.push_back(*e);
    envp.push_back(var.data());
    envp.push_back(nullptr);
    char arg0[] = "multiproc-resource-tracker";
    char* argv[] = {arg0, nullptr};
    const int rd = theirs.get(), wr = startup_wr.get();

    const pid_t mid = raw_fork();
    if (mid < 0) throw_os_error("clone (resource tracker)");
    if (mid == 0) {
        const pid_t t = raw_fork();
        if (t == 0) {
            ::fcntl(rd, F_SETFD, 0);
            ::fcntl(wr, F_SETFD, 0);
            ::execve("/proc/self/exe", argv, envp.data());
            ::_exit(127);
        }
        ::_exit(t < 0 ? 1 : 0);
    }
    theirs.reset();
    startup_wr.reset();
    int status = 0;
    sys::check_retry([&] { return ::waitpid(mid, &status, 0); }, "waitpid (resource tracker)");
    pid_t tracker = 0;
    if (sys::retry_eintr([&] { return ::read(startup_rd.get(), &tracker, sizeof tracker); }) !=
        static_cast<ssize_t>(sizeof tracker))
        throw ProcessError("multiproc: the resource tracker process failed to start");
    g_pid = tracker;
    g_fd = ours.release();
}

// In the exec'd tracker, before main: become the tracker and never return.
__attribute__((constructor(101))) void run_tracker_if_asked() {
    const char* v = ::getenv(kEnv);
    if (!v) return;
    int rd = -1, wr = -1;
    if (std::sscanf(v, "%d:%d", &rd, &wr) != 2 || rd < 0 || wr < 0) return;
    ::unsetenv(kEnv);
    tracker_main(rd, wr);
}

void send_record(char kind, std::string_view name) {
    if (name.size() + 1 > kMaxRecord) return;
    char buf[kMaxRecord];
    buf[0] = kind;
    name.copy(buf + 1, name.size());
    (void)sys::retry_eintr([&] { return ::send(g_fd, buf, name.size() + 1, MSG_NOSIGNAL); });
}

}  // namespace

void ensure_running() {
    std::lock_guard lk(g_mu);
    if (g_fd < 0) start_locked();
}

void register_name(std::string_view name) {
    std::lock_guard lk(g_mu);
    if (g_fd < 0) start_locked();
    send_record('R', name);
}

void unregister_name(std::string_view name) {
    std::lock_guard lk(g_mu);
    if (g_fd >= 0) send_record('U', name);
}

int fd() noexcept {
    std::lock_guard lk(g_mu);
    return g_fd;
}

void adopt(UniqueFd fd) {
    std::lock_guard lk(g_mu);
    if (g_fd < 0) g_fd = fd.release();
}

pid_t pid() noexcept {
    std::lock_guard lk(g_mu);
    return g_pid;
}

void detach() noexcept {
    std::lock_guard lk(g_mu);
    if (g_fd >= 0) ::close(g_fd);
    g_fd = -1;
    g_pid = 0;
}

}  // namespace mp::detail::resource_tracker
