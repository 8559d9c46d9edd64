#include "resource_tracker.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "multiproc/errors.hpp"
#include "sys/child_fds.hpp"
#include "sys/exec.hpp"
#include "sys/io.hpp"
#include "sys/process.hpp"
#include "sys/shm.hpp"
#include "sys/sigmask.hpp"
#include "sys/socket.hpp"
#include "sys/wait.hpp"

extern char** environ;

namespace mp::detail::resource_tracker {
namespace {

constexpr std::size_t kMaxRecord = 512;

std::mutex g_mu;
int g_fd = -1;  // inherited by forked children along with the descriptor itself
pid_t g_pid = 0;

// A fork while another thread held g_mu would leave it locked forever in the child.
[[maybe_unused]] const bool g_atfork = [] {
    sys::on_fork_child([] { new (&g_mu) std::mutex; });
    return true;
}();

// Runs in the tracker process: never returns.
[[noreturn]] void tracker_main(int rd, int startup) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sys::ignore_signal(sig);
    sys::unblock_all_signals();
    // Keep nothing of the program open but stderr: a pipe end held here would keep some other
    // reader of the program from ever seeing end-of-file.
    sys::close_fds_except(rd, startup);
    sys::leave_program_files();
    const pid_t me = sys::current_pid();
    {
        UniqueFd report(startup);
        try {
            sys::write_all(report.get(), &me, sizeof me);
        } catch (const std::exception&) {
            // The starter gave up waiting: it reports the failure; serve all the same.
        }
    }

    std::vector<std::string> names;
    char buf[kMaxRecord];
    for (;;) {
        const ssize_t n = sys::recv_record(rd, buf, sizeof buf);
        if (n <= 0) break;  // end of file: every process of the program is gone
        std::string name(buf + 1, static_cast<std::size_t>(n - 1));
        if (buf[0] == 'R') {
            names.push_back(std::move(name));
        } else if (buf[0] == 'U') {
            if (auto it = std::find(names.begin(), names.end(), name); it != names.end())
                names.erase(it);
        }
    }
    for (const auto& name : names) static_cast<void>(sys::shm_unlink_name(name));
    sys::exit_now(0);
}

constexpr const char* kEnv = "MULTIPROC_RESOURCE_TRACKER";

void start_locked() {
    auto pair = sys::make_socketpair(SOCK_SEQPACKET);
    UniqueFd ours = std::move(pair.write), theirs = std::move(pair.read);
    auto startup = sys::make_pipe();
    UniqueFd startup_rd = std::move(startup.read), startup_wr = std::move(startup.write);

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

    // Raw clones (sys::clone_bare): the children run no pthread_atfork handler and may only
    // make system calls until the exec.
    const pid_t mid = sys::clone_bare();
    if (mid < 0) throw_os_error("clone (resource tracker)", -mid);
    if (mid == 0) {
        const pid_t t = sys::clone_bare();
        if (t == 0) {
            static_cast<void>(sys::set_cloexec(rd, false));
            static_cast<void>(sys::set_cloexec(wr, false));
            sys::exec_self(argv, envp.data());
            sys::exit_now(127);
        }
        sys::exit_now(t < 0 ? 1 : 0);
    }
    theirs.reset();
    startup_wr.reset();
    if (const int r = sys::wait_pid(mid); r < 0) throw_os_error("waitpid (resource tracker)", -r);
    pid_t tracker = 0;
    if (sys::read_full(startup_rd.get(), &tracker, sizeof tracker) != sizeof tracker)
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
    (void)sys::send_record(g_fd, buf, name.size() + 1);
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
    UniqueFd(g_fd).reset();
    g_fd = -1;
    g_pid = 0;
}

}  // namespace mp::detail::resource_tracker
