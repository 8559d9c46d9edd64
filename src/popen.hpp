// The start-method strategy interface (CPython's popen_fork.py / popen_spawn_posix.py /
// popen_forkserver.py), and the process-wide state the strategies share.
//
// A Process asks, at start(), for the launch function of its start method
// (launch_function(method), a table in context.cpp), hands it a LaunchSpec, and keeps the
// returned Popen for the child's whole life. Adding a start method is writing
//     std::unique_ptr<Popen> launch_spawn(const LaunchSpec&);
// and putting it in the table of context.cpp (one line). A strategy that makes a direct child
// of this process (fork, spawn) returns a DirectChild; forkserver, whose children belong to
// the server, implements Popen itself (exit status over its socket, sentinel = a pipe or pidfd).
//
// The two forms of a target: LaunchSpec::target->invoke() runs it in a forked child (fork,
// and the forkserver's fork after decoding); TargetCall::package() (see process.hpp) returns
// the shipped form (mp::detail::CallPackage: bytes + descriptors, or
// why_not) that spawn/forkserver encode into the child's bootstrap.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "multiproc/context.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/process.hpp"
#include "multiproc/timeout.hpp"
#include "sys/bound.hpp"
#include "sys/sigmask.hpp"  // SIGTERM, SIGKILL, SIGINT, SIGRTMAX

namespace mp {

/// Who a process is (current_process() and, in a child, parent_process()). Built by the parent
/// before it starts the child, so the child only swaps a pointer after fork.
struct CurrentProcess::Info {
    std::string name;
    std::vector<int> identity;  // Python's _identity; empty in the main process
    bool daemon = false;
    pid_t parent_pid = 0;  // 0 in the main process
    // The process the kernel sees as the parent (getppid(), whose death a daemon's death signal
    // follows), when it is not parent_pid: the forkserver, for the children it forks.
    pid_t os_parent = 0;
    // Started by a thread other than the parent's main thread. A daemon's death signal follows
    // the thread that started it (Linux), so such a daemon catches the signal and dies only if
    // the parent process has gone (arm_daemon_death, src/current_process.cpp).
    bool off_main_thread = false;
    // The method that started this process; a child makes it its own global default (Python's
    // _bootstrap forces it), so its own children are made the same way (run_child).
    StartMethod start_method = StartMethod::fork;
    // Python's authkey: 32 random bytes made once in the main process, inherited by every child
    // (or set per Process before start); the default key of Listeners and Managers made for
    // the program's own processes.
    std::string authkey;
    std::string parent_name;
    // The parent recorded a timeline when it started this child (trace::children_record()):
    // only then does the child look for the recording's directory.
    bool parent_traced = false;
    // A pidfd of the parent, owned by the child for its whole life. kParentPidfdUnopened until
    // parent_process() first needs it (opening it costs the child a system call and a check
    // at every start); -1 when the parent had already ended (or is not known by pid).
    static constexpr int kParentPidfdUnopened = -2;
    mutable std::atomic<int> parent_pidfd{kParentPidfdUnopened};
};

namespace detail {

/// One started child, as a start method sees it. Thread-safe.
class Popen {
public:
    virtual ~Popen() = default;
    /// The child's pid.
    [[nodiscard]] virtual pid_t pid() const noexcept = 0;
    /// Readable once the child has ended (-1 after close()).
    [[nodiscard]] virtual int sentinel() const noexcept = 0;
    /// The exit code if the child has ended (reaping it), else std::nullopt. Never blocks.
    [[nodiscard]] virtual std::optional<int> poll() = 0;
    /// Waits until the child ends or the deadline passes; the exit code or std::nullopt.
    [[nodiscard]] virtual std::optional<int> wait(Deadline deadline) = 0;
    /// Sends sig unless the child was already reaped.
    virtual void send_signal(int sig) = 0;
    /// SIGTERM.
    void terminate() { send_signal(SIGTERM); }
    /// SIGKILL.
    void kill() { send_signal(SIGKILL); }
    /// SIGINT.
    void interrupt() { send_signal(SIGINT); }
    /// Releases the sentinel (the exit code, if known, stays readable through poll()).
    virtual void close() noexcept = 0;
};

/// A direct child of this process, reaped with waitid(P_PID) and only under its lock: until
/// then its pid cannot be reused, so signals may go by pid, and a pidfd (the sentinel, and
/// what a timed wait polls) is opened on first use rather than at every start. A caller that
/// cannot promise the lock-only reaping (SIGCHLD ignored: the kernel reaps) passes the pidfd.
class DirectChild final : public Popen {
public:
    DirectChild(pid_t pid, UniqueFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
    /// A child to come: adopt() names it (allocated before fork, see launch_fork).
    DirectChild() noexcept = default;
    /// Names the child (pidfd may be empty), once, before the object is shared. gone: it was
    /// reaped by the kernel already (SIGCHLD ignored), so its pid must not be signalled.
    void adopt(pid_t pid, UniqueFd pidfd, bool gone = false) noexcept {
        pid_ = pid;
        pidfd_ = std::move(pidfd);
        gone_ = gone;
    }
    pid_t pid() const noexcept override { return pid_; }
    /// A pidfd, opened on first use; once the child has been reaped, a descriptor that is
    /// always readable. -1 if it cannot be opened (descriptor limit) or after close().
    int sentinel() const noexcept override;
    std::optional<int> poll() override;
    std::optional<int> wait(Deadline deadline) override;
    void send_signal(int sig) override;
    void close() noexcept override;

private:
    std::optional<int> reap_locked();      // WNOHANG; under m_
    int sentinel_locked() const noexcept;  // under m_
    pid_t pid_ = 0;                        // set before the object is shared, constant afterwards
    mutable std::mutex m_;
    mutable UniqueFd pidfd_;  // opened lazily (sentinel_locked)
    bool closed_ = false;
    bool gone_ = false;
    std::optional<int> code_;
};

/// Everything a start method needs to make one child.
struct LaunchSpec {
    // The child's identity (name, daemon, parent). A reference to the caller's pointer, so that
    // a fork child can take it over (move it) without touching its reference count.
    std::shared_ptr<CurrentProcess::Info>& child;
    TargetCall* target;  // both forms of the target
};

using LaunchFn = std::unique_ptr<Popen> (*)(const LaunchSpec&);

/// The launch function of m.
LaunchFn launch_function(StartMethod m);
/// The start method a Process without a context uses (fixes the global default).
StartMethod default_start_method();
/// In a new child, before its target runs: the method that started it becomes its global
/// default, as if set with force (lock-free: a fork child must not take a lock).
void force_start_method(StartMethod m) noexcept;

/// `fork`: the child is a copy of this process and runs spec.target->invoke().
std::unique_ptr<Popen> launch_fork(const LaunchSpec& spec);

/// Logs, once per process, that forking a multi-threaded process may deadlock the child.
void warn_if_multithreaded_fork();
/// Forgets that the warning was logged (tests only).
void reset_fork_warning_for_testing() noexcept;

/// The death signal of a daemonic child started by a thread other than its parent's main
/// thread: caught, so that the end of that thread alone does not kill it (docs/process.md).
inline int daemon_death_signal() noexcept { return SIGRTMAX; }

/// `f` itself, opaque to the optimizer: the calls a fork child makes (see sys/bound.hpp).
using sys::bound;

/// The child side of every start method, after the process exists: adopts the identity `child`
/// (moved in: no allocation, no lock, no reference count touched), arms the daemon's death
/// signal, installs the exit handler, runs target and exits with Python's exit code. Never
/// returns. In a fork child it must run first, before anything that might ask who we are.
[[noreturn]] void run_child(std::shared_ptr<CurrentProcess::Info>&& child,
                            TargetCall& target) noexcept;
/// In a process that forks many children and nothing else (the forkserver): builds now what
/// run_child would otherwise build in each child (the identity record, the children registry)
/// and installs its exit handler once. The process must not start Processes itself afterwards.
void prepare_child_path();
/// The pidfd of info's parent, opened on first use (-1 when the parent has ended).
int parent_pidfd(const CurrentProcess::Info& info) noexcept;

/// Flushes the standard streams that hold output: std::cout/cerr/clog, stdout, stderr (Python's
/// util._flush_std_streams). Other FILE*s are the program's to flush, as in Python.
void flush_std_streams() noexcept;

/// The identity of the next Process made in this process (Python's _identity + counter).
std::vector<int> next_identity();
/// The current process's identity record.
std::shared_ptr<const CurrentProcess::Info> current_info() noexcept;

/// Registers a started child (Python's _children.add) and, once, the exit-time joiner.
void register_child(std::shared_ptr<ProcessState> st);
/// Forgets a child that has been reaped.
bool unregister_child(const ProcessState* st) noexcept;
/// Python's util._exit_function: terminate daemonic children, then join all of them.
void join_children_at_exit() noexcept;
/// In a fork child: forget the parent's children without locking or freeing anything.
void reset_children_after_fork() noexcept;
/// Whether this process has registered a child since it began (or since the fork that made it).
bool has_registered_children() noexcept;

}  // namespace detail
}  // namespace mp
