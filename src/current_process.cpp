// Who this process is (current_process, parent_process), the child side shared by every start
// method (run_child), and the CPU counts.
#include <cxxabi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <string>
#include <thread>

#include "demangle.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "popen.hpp"
#include "sys/cpus.hpp"
#include "sys/io.hpp"
#include "sys/pidfd.hpp"
#include "sys/process.hpp"
#include "sys/random.hpp"
#include "sys/sigmask.hpp"
#include "sys/signals.hpp"
#include "trace_hook.hpp"

namespace mp {
namespace detail {
namespace {

constexpr std::size_t kAuthkeyBytes = 32;  // Python: os.urandom(32)

using InfoPtr = std::shared_ptr<CurrentProcess::Info>;

// The current identity lives in raw storage so that a fork child can replace it with a
// placement new: no lock, no allocation, and the parent's record is simply left behind (the
// child never frees it). In the parent it is written once, before any child exists.
alignas(InfoPtr) unsigned char g_current_storage[sizeof(InfoPtr)];

[[gnu::hot]] InfoPtr& current_holder() noexcept {
    static InfoPtr* p = [] {
        auto main = std::make_shared<CurrentProcess::Info>();
        main->name = "MainProcess";
        main->authkey.resize(kAuthkeyBytes);
        sys::random_bytes(main->authkey.data(), main->authkey.size());
        return new (g_current_storage) InfoPtr(std::move(main));
    }();
    return *p;
}

// The logger's "[LEVEL/ProcessName]" prefix names the process as Python's does.
const char* log_name() noexcept { return current_holder()->name.c_str(); }
[[maybe_unused]] const bool g_log_name_installed = (set_log_process_name_source(&log_name), true);

// Python's process._process_counter: reset to 1 in every child.
std::atomic<int> g_counter{1};
// The pid that installed the child exit handler; a plain fork() of the target must not use it.
std::atomic<pid_t> g_child_pid{0};
// Set by prepare_child_path (the forkserver): children inherit the exit handler, installed,
// and a registry that never held a child.
bool g_child_path_prepared = false;

// Python's "Process Process-1:\nTraceback ...\nValueError: boom" for the current exception.
void report_exception(const std::string& name) noexcept {
    try {
        const HandledException ex = describe_current_exception();
        std::string msg = "Process " + name + ":\nTraceback (most recent call last):\n  in the " +
                          "target of " + name + " (pid " + std::to_string(sys::current_pid()) +
                          "): uncaught exception\n" + ex.type +
                          (ex.has_what ? ": " + ex.what : "") + "\n";
        flush_std_streams();
        sys::write_all(2, msg.data(), msg.size());
    } catch (...) {
        sys::write_stderr("multiproc: the target threw; the report failed\n");
    }
}

// The functions a fork child runs are marked hot: GCC gathers them in .text.hot, so that the
// child, which starts with none of the program's code mapped, pages them in with one fault.
[[noreturn, gnu::hot]] void finish(int code) noexcept {
    if (has_registered_children()) join_children_at_exit();
    flush_std_streams();
    sys::exit_now(code);
}

// Registered with on_exit in the child, after fork: it is the newest exit handler, so
// std::exit(N) in the target runs it first, and _exit(N) keeps the parent's atexit handlers
// and static destructors (inherited in memory) from running a second time.
void child_exit_handler(int status, void*) {
    if (sys::current_pid() != g_child_pid.load(std::memory_order_relaxed)) return;
    finish(status);
}

// Whether a stream buffer holds output not yet handed to its sink: pptr() and pbase() are
// protected, reached through a member pointer of a derived class (well-defined C++).
struct PendingOutput : std::streambuf {
    static bool in(std::streambuf* b) noexcept {
        if (!b) return false;
        auto pptr = &PendingOutput::pptr;
        auto pbase = &PendingOutput::pbase;
        return (b->*pptr)() != (b->*pbase)();
    }
};

[[gnu::hot]] void flush_if_pending(std::ostream& os) noexcept {
    // With sync_with_stdio(true) (the default) the standard streams are unbuffered and write
    // through to C's stdout/stderr, which fflush covers: nothing to do here, and no code to
    // page in (a fork child pays a page fault for every page of code it runs).
    if (!PendingOutput::in(os.rdbuf())) return;
    try {
        os.flush();
    } catch (...) {
    }
}

// The standard C streams only, as Python flushes sys.stdout and sys.stderr: fflush(nullptr)
// would lock and walk every stream, code and data a fork child has to page in (measured:
// 13 us of a 205 us start+join). glibc's FILE is a public struct: its write buffer holds
// output when the write pointer has moved past the base.
[[gnu::hot]] void flush_if_pending(FILE* f) noexcept {
#if defined(__GLIBC__)
    if (f->_IO_write_ptr <= f->_IO_write_base) return;
#endif
    bound (&std::fflush)(f);
}

}  // namespace

[[gnu::hot]] void flush_std_streams() noexcept {
    flush_if_pending(std::cout);
    flush_if_pending(std::cerr);
    flush_if_pending(std::clog);
    flush_if_pending(stdout);
    flush_if_pending(stderr);
}

std::shared_ptr<const CurrentProcess::Info> current_info() noexcept { return current_holder(); }

std::vector<int> next_identity() {
    std::vector<int> id = current_holder()->identity;
    id.push_back(g_counter.fetch_add(1));
    return id;
}

int parent_pidfd(const CurrentProcess::Info& info) noexcept {
    int fd = info.parent_pidfd.load(std::memory_order_acquire);
    if (fd != CurrentProcess::Info::kParentPidfdUnopened) return fd;
    // Opened, then checked against getppid(): a parent that died first (its pid perhaps
    // reused) has made us somebody else's child, so it is not mistaken for a live one.
    int opened = sys::pidfd_open_raw(info.parent_pid);
    if (opened >= 0 && sys::parent_pid() != info.parent_pid) {
        UniqueFd(opened).reset();
        opened = -1;
    }
    if (opened < 0) opened = -1;
    int expected = CurrentProcess::Info::kParentPidfdUnopened;
    if (!info.parent_pidfd.compare_exchange_strong(expected, opened, std::memory_order_acq_rel)) {
        if (opened >= 0) UniqueFd(opened).reset();  // another thread opened it first
        return expected;
    }
    return opened;
}

namespace {

// The parent of a daemon started off the parent's main thread (arm_daemon_death).
pid_t g_daemon_parent = 0;

// A thread of the parent ended, or the whole parent. The kernel sends a child's death signal
// when the thread that started it ends and hands the child to another thread of the same
// process: getppid() (a process id) is unchanged then. Only once the last thread has gone is
// the child handed to another process. Async-signal-safe.
void parent_thread_ended(int) noexcept {
    if (sys::parent_pid() != g_daemon_parent) sys::send_signal(sys::current_pid(), SIGKILL);
}

// No daemonic child may outlive its parent, even one killed by SIGKILL: the kernel's death
// signal does it. Started by the parent's main thread, the signal is SIGKILL itself; started by
// another thread, whose end alone would kill the child, it is a signal caught by
// parent_thread_ended (daemon_death_signal(), reserved in daemonic children started that way).
// The parent may have died before prctl: then getppid() already names another process.
[[gnu::hot]] void arm_daemon_death(const CurrentProcess::Info& info) noexcept {
    const pid_t parent = info.os_parent ? info.os_parent : info.parent_pid;
    int sig = SIGKILL;
    if (info.off_main_thread) {
        sig = daemon_death_signal();
        g_daemon_parent = parent;
        sys::catch_signal(sig, parent_thread_ended);
        sys::unblock_signal(sig);
    }
    sys::set_parent_death_signal(sig);
    if (sys::parent_pid() != parent) sys::raise_signal(SIGKILL);
}

}  // namespace

void prepare_child_path() {
    static_cast<void>(current_holder());
    static_cast<void>(has_registered_children());
    // The newest exit handler, as run_child would install it: nothing is registered after it
    // in this process, and a child's target registers its own handlers after it.
    if (!sys::add_exit_handler(child_exit_handler)) throw ProcessError("multiproc: on_exit failed");
    g_child_path_prepared = true;
}

[[gnu::hot]] void run_child(std::shared_ptr<CurrentProcess::Info>&& child,
                            TargetCall& target) noexcept {
    CurrentProcess::Info* info = child.get();
    // Who we are, first: a signal handler or the target may ask. Moved in, so the parent's
    // control block (a page shared with the parent until written) is not touched; the parent's
    // record is left behind, never freed.
    InfoPtr& old = current_holder();
    const int grandparent_fd = old->parent_pidfd.load(std::memory_order_relaxed);
    new (&old) InfoPtr(std::move(child));
    if (grandparent_fd >= 0) UniqueFd(grandparent_fd).reset();  // our parent's own parent pidfd
    g_counter.store(1, std::memory_order_relaxed);
    g_child_pid.store(sys::current_pid(), std::memory_order_relaxed);
    if (!g_child_path_prepared) reset_children_after_fork();
    sys::sigint_forget_after_fork();  // the parent's mp::SigintGuard is not the child's
    // Waits go to a tracing parent.
    trace::child_started(info->parent_pid, sys::current_pid(), info->parent_traced);

    force_start_method(info->start_method);
    if (info->daemon) arm_daemon_death(*info);
    if (!g_child_path_prepared) static_cast<void>(sys::add_exit_handler(child_exit_handler));

    int code = 0;
    try {
        target.invoke();
    } catch (abi::__forced_unwind&) {
        finish(0);  // pthread_exit in the target: the child ends as after a return
    } catch (...) {
        report_exception(info->name);
        code = 1;
    }
    finish(code);
}
}  // namespace detail

const std::string& CurrentProcess::name() const noexcept { return info_->name; }
pid_t CurrentProcess::pid() const noexcept { return sys::current_pid(); }
const std::string& CurrentProcess::authkey() const noexcept { return info_->authkey; }
bool CurrentProcess::daemon() const noexcept { return info_->daemon; }
const std::vector<int>& CurrentProcess::identity() const noexcept { return info_->identity; }

const std::string& ParentProcess::name() const noexcept { return child_->parent_name; }
pid_t ParentProcess::pid() const noexcept { return child_->parent_pid; }
int ParentProcess::sentinel() const noexcept { return detail::parent_pidfd(*child_); }

bool ParentProcess::is_alive() const {
    const int fd = detail::parent_pidfd(*child_);
    if (fd < 0) return sys::parent_pid() == child_->parent_pid;
    return !sys::wait_readable(fd, detail::Deadline(Timeout(std::chrono::seconds(0))));
}

void ParentProcess::join(Timeout timeout) const {
    detail::Deadline deadline(timeout);
    const int fd = detail::parent_pidfd(*child_);
    if (fd >= 0) {
        static_cast<void>(sys::wait_readable(fd, deadline));
        return;
    }
    // Without a pidfd (the parent had already ended, or pidfd_open failed): poll getppid().
    while (sys::parent_pid() == child_->parent_pid && !deadline.expired())
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

CurrentProcess current_process() { return CurrentProcess(detail::current_info()); }

std::optional<ParentProcess> parent_process() {
    auto info = detail::current_info();
    if (info->parent_pid == 0) return std::nullopt;
    return ParentProcess(std::move(info));
}

int cpu_count() { return sys::online_cpu_count(); }

int process_cpu_count() { return sys::allowed_cpu_count(); }

}  // namespace mp
