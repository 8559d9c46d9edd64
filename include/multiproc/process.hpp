// mp::Process: run a callable in a child process (Python's multiprocessing.Process), and the
// module functions around it: current_process, parent_process, active_children, cpu_count.
//
//   mp::Process p(worker, std::string("job-1"));   // target + copies of the arguments
//   p.start();                                      // the child runs worker(copy-of-"job-1")
//   p.join();                                       // *p.exitcode() == 0
//
// Across processes: under `fork` the child is a copy of the parent and invokes target(args...)
// on its own decayed copies; the return value is ignored. Under `spawn` and `forkserver` the
// target and arguments are shipped (multiproc/callable.hpp; docs/start_methods.md has the
// table): what cannot ship makes start() throw mp::ProcessError naming the part and why. The
// child's exit code, as Python's: 0 after a normal return, N after std::exit(N), 1 after an
// uncaught exception (printed to stderr as "Process Process-1:" + type + what()), -S when
// killed by signal S. A child leaves through _exit: the parent's atexit handlers and static
// destructors never run twice, and stdio is flushed first. A daemonic child is SIGTERMed when
// its parent exits normally and SIGKILLed by the kernel when the parent dies abruptly (see
// docs/process.md for the Linux caveat: the death signal follows the parent *thread* that
// started the child); a daemonic process may not start children of its own.
//
// Lifetime: a Process is a move-only owner. A child that was started and is still running when
// its Process is destroyed is not leaked: it stays registered, and is reaped by
// active_children() or joined when the program exits normally (Python's behaviour; daemonic
// children are terminated first). Every started child is reaped (no zombie) by join,
// is_alive, exitcode, active_children or exit.
//
// Thread safety: a Process may be used from several threads at once (join in one thread while
// another calls terminate), except close(), which must not race with other calls on the same
// object. Processes may be started from several threads at once.
//
// Blocking: join() waits for the child's exit (join(timeout) at most that long, then returns
// with the child still running). Nothing else blocks, except exit-time joins described above.
// Signal handlers never end a join early (PEP 475); Ctrl-C under an mp::SigintGuard makes it
// throw mp::KeyboardInterrupt, the child left running (docs/signals.md). Children start
// without the parent's guard, with SIGINT's default disposition, under every start method.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/context.hpp"
#include "multiproc/detail/owned.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

namespace detail {

struct ProcessState;
struct MakeTag {};

/// A Process target with copies of its arguments, type-erased, in both forms: invoke() runs it
/// here (a fork child), package() ships it (spawn, forkserver: bytes + descriptors, or why not).
class TargetCall {
public:
    virtual ~TargetCall() = default;
    /// Runs target(args...) on the stored copies; the result is discarded.
    virtual void invoke() = 0;
    /// The shipped form of target(args...) (mp::detail::package_call), or why it cannot ship.
    [[nodiscard]] virtual CallPackage package() const = 0;
};

template <class F, class Tuple>
class TargetCallImpl final : public TargetCall {
public:
    template <class G, class T>
    TargetCallImpl(G&& f, T&& args) : f_(std::forward<G>(f)), args_(std::forward<T>(args)) {}
    void invoke() override {
        std::apply([this](auto&... a) { static_cast<void>(detail::invoke(f_, a...)); }, args_);
    }
    CallPackage package() const override {
        return std::apply([this](const auto&... a) { return package_call(f_, a...); }, args_);
    }

private:
    F f_;
    Tuple args_;
};

/// Decay-copies target and args into a TargetCall (the Process constructors' one helper).
template <class F, class... Args>
Owned<TargetCall> make_target_call(F&& f, Args&&... args) {
    using Fn = std::decay_t<F>;
    using Tuple = std::tuple<std::decay_t<Args>...>;
    static_assert(std::is_invocable_v<Fn&, std::decay_t<Args>&...>,
                  "mp::Process: the target cannot be called with these arguments "
                  "(the child calls target(args...) on copies, as lvalues)");
    static_assert((std::is_copy_constructible_v<std::decay_t<Args>> && ...),
                  "mp::Process: arguments must be copyable");
    // Through std::make_unique, not a bare new: with the latter g++ 12 -O2 inlines differently
    // and warns of a spurious maybe-uninitialized std::optional in a thunk (-Werror builds).
    return Owned<TargetCall>(std::make_unique<TargetCallImpl<Fn, Tuple>>(
                                 std::forward<F>(f), Tuple(std::forward<Args>(args)...))
                                 .release());
}

/// What Process and ChildProcess share: the queries and controls of a started child.
class ProcessView {
public:
    /// The name ("Process-N" or "Process-N:M" by default, as Python).
    [[nodiscard]] std::string name() const;
    /// The child's pid; std::nullopt before start (Python's None). Throws once closed.
    [[nodiscard]] std::optional<pid_t> pid() const;
    /// Same as pid() (Python's ident).
    [[nodiscard]] std::optional<pid_t> ident() const { return pid(); }
    /// The daemon flag.
    [[nodiscard]] bool daemon() const;
    /// The key the child has as current_process().authkey() (the creator's, unless set).
    [[nodiscard]] std::string authkey() const;
    /// True from start() until the child has ended (reaps it when it has).
    [[nodiscard]] bool is_alive() const;
    /// Empty while running or before start; 0 normal return, N exit(N), -S killed by signal S.
    [[nodiscard]] std::optional<int> exitcode() const;
    /// Waits until the child ends and reaps it. UsageError if not started.
    void join() const;
    /// Waits at most `timeout`; returns with the child possibly still running (check exitcode).
    void join(Timeout timeout) const;
    /// Sends SIGTERM (nothing once the child has been reaped).
    void terminate() const;
    /// Sends SIGKILL (nothing once the child has been reaped).
    void kill() const;
    /// Sends SIGINT, Ctrl-C for this child alone (Python 3.14's interrupt; nothing once the
    /// child has been reaped). A child under mp::SigintGuard gets mp::KeyboardInterrupt.
    void interrupt() const;
    /// A descriptor that becomes readable when the child ends, owned by the object: a pidfd
    /// (opened on first use), or, first asked for after the child was reaped, one always readable.
    [[nodiscard]] int sentinel() const;

protected:
    ProcessView() = default;
    explicit ProcessView(std::shared_ptr<ProcessState> st) noexcept : st_(std::move(st)) {}
    ProcessState& state() const;  // UsageError on a moved-from object
    std::shared_ptr<ProcessState> st_;
};

}  // namespace detail

/// A child process running target(args...) (Python's multiprocessing.Process). Move-only.
class Process : public detail::ProcessView {
public:
    /// A process that will run target(args...) on decayed copies, with the default start method.
    template <class F, class... Args>
    requires(
        !std::is_same_v<std::remove_cvref_t<F>, Process> &&
        !std::is_same_v<std::remove_cvref_t<F>, Context> &&
        !std::is_same_v<std::remove_cvref_t<F>, detail::MakeTag>) explicit Process(F&& target,
                                                                                   Args&&... args)
        : Process(detail::MakeTag{}, std::nullopt,
                  detail::make_target_call(std::forward<F>(target), std::forward<Args>(args)...)) {}
    /// The same, with the start method of ctx (Python's ctx.Process).
    template <class F, class... Args>
    Process(const Context& ctx, F&& target, Args&&... args)
        : Process(detail::MakeTag{}, ctx.method(),
                  detail::make_target_call(std::forward<F>(target), std::forward<Args>(args)...)) {}

    Process(Process&&) noexcept = default;
    Process& operator=(Process&&) noexcept = default;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    /// Never kills or blocks: a running child stays registered (see the header comment).
    ~Process() = default;

    /// Starts the child. UsageError when already started, closed, or called in a daemonic
    /// process; mp::ProcessError when the start method is not available; system_error (fork).
    void start();
    /// Renames (affects this object and, if not started yet, the child's current_process()).
    void set_name(std::string name);
    /// Sets the daemon flag; only before start (else UsageError).
    void set_daemon(bool daemonic);
    /// Sets the child's authentication key; only before start (else UsageError).
    void set_authkey(std::string key);
    /// Releases the pidfd and the target. UsageError while the child is still running.
    void close();

private:
    Process(detail::MakeTag, std::optional<StartMethod> method,
            detail::Owned<detail::TargetCall> target);
};

/// A shared reference to a started child (what active_children() returns). Copyable.
class ChildProcess : public detail::ProcessView {
public:
    explicit ChildProcess(std::shared_ptr<detail::ProcessState> st) noexcept
        : ProcessView(std::move(st)) {}
};

/// This process as multiproc sees it (Python's current_process()).
class CurrentProcess {
public:
    /// "MainProcess" in the main process, else the Process's name.
    [[nodiscard]] const std::string& name() const noexcept;
    /// getpid().
    [[nodiscard]] pid_t pid() const noexcept;
    /// Same as pid().
    [[nodiscard]] pid_t ident() const noexcept { return pid(); }
    /// True: the process asking is running (Python's current_process().is_alive()).
    [[nodiscard]] bool is_alive() const noexcept { return true; }
    /// std::nullopt: the process asking has not ended (Python's current_process().exitcode).
    [[nodiscard]] std::optional<int> exitcode() const noexcept { return std::nullopt; }
    /// True in a daemonic child.
    [[nodiscard]] bool daemon() const noexcept;
    /// This process's authentication key (Python's current_process().authkey): 32 random
    /// bytes made once by the main process and inherited by every child under every start
    /// method, unless the Process was given another with set_authkey. The key to give a
    /// Listener or Manager that the program's own children connect to.
    [[nodiscard]] const std::string& authkey() const noexcept;
    /// Python's _identity: {} in the main process, {1} in Process-1, {1, 2} in Process-1:2.
    [[nodiscard]] const std::vector<int>& identity() const noexcept;

    struct Info;
    explicit CurrentProcess(std::shared_ptr<const Info> info) noexcept : info_(std::move(info)) {}

private:
    std::shared_ptr<const Info> info_;
};

/// The parent of a child process (Python's parent_process()), watched through a pidfd.
class ParentProcess {
public:
    /// The parent's name ("MainProcess", or "Process-1" for a grandchild).
    [[nodiscard]] const std::string& name() const noexcept;
    /// The parent's pid.
    [[nodiscard]] pid_t pid() const noexcept;
    /// Same as pid().
    [[nodiscard]] pid_t ident() const noexcept { return pid(); }
    /// False once the parent has ended.
    [[nodiscard]] bool is_alive() const;
    /// Waits at most `timeout` for the parent to end (forever by default).
    void join(Timeout timeout = forever) const;
    /// A descriptor readable once the parent has ended (a pidfd; -1 if it had already ended).
    [[nodiscard]] int sentinel() const noexcept;

    explicit ParentProcess(std::shared_ptr<const CurrentProcess::Info> child) noexcept
        : child_(std::move(child)) {}

private:
    std::shared_ptr<const CurrentProcess::Info> child_;
};

/// This process (name "MainProcess" in the main process).
CurrentProcess current_process();
/// The parent of this child process; std::nullopt in the main process.
std::optional<ParentProcess> parent_process();
/// The started children still running; reaps those that have ended (as Python).
std::vector<ChildProcess> active_children();
/// Online CPUs of the machine (at least 1).
int cpu_count();
/// CPUs this process may run on (its affinity mask; at least 1).
int process_cpu_count();

template <class F, class... Args>
mp::Process Context::Process(F&& target, Args&&... args) const {
    return mp::Process(*this, std::forward<F>(target), std::forward<Args>(args)...);
}

}  // namespace mp
