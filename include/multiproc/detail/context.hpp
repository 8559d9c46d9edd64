// mp::Context and the start-method functions of <multiproc/context.hpp>, without the body of
// Context::Process (process.hpp defines it after mp::Process): what headers below the front ends
// include when they only carry a Context, and what process.hpp builds on, so that context.hpp
// and process.hpp do not include each other.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mp {

class Process;
class Manager;

/// How child processes are made; `mpi` is no start method but the context whose Pool, executor
/// and parallel_map run their tasks on the MPI ranks of the job (multiproc::mpi, docs/mpi.md).
enum class StartMethod { fork, spawn, forkserver, mpi };

/// The method's name as Python spells it: "fork", "spawn", "forkserver" (and "mpi").
std::string_view to_string(StartMethod m) noexcept;

/// A start method, fixed: the objects it makes all use that method.
class Context {
public:
    /// A context for method m.
    explicit Context(StartMethod m);
    /// The start method of this context.
    [[nodiscard]] StartMethod method() const noexcept { return method_; }
    /// The method's name (Python's ctx.get_start_method()).
    [[nodiscard]] std::string get_start_method() const;
    /// The context for `method`, or this context when empty (Python's ctx.get_context()).
    [[nodiscard]] Context get_context(std::string_view method = {}) const;
    /// A Process that runs target(args...) with this context's method (Python's ctx.Process).
    template <class F, class... Args>
    [[nodiscard]] mp::Process Process(F&& target, Args&&... args) const;
    /// A Manager whose server process starts with this context's method (Python's
    /// ctx.Manager()); defined with mp::Manager in <multiproc/managers.hpp>.
    [[nodiscard]] mp::Manager Manager() const;
    /// Python's ctx.set_forkserver_preload: mp::set_forkserver_preload (one forkserver serves
    /// every context); defined in <multiproc/context.hpp>.
    template <class F, class... Args>
    void set_forkserver_preload(const F& f, const Args&... args) const;

    friend bool operator==(const Context&, const Context&) = default;

private:
    StartMethod method_;
};

/// The context for `method`, or the default context when empty (which fixes the default).
/// An unknown name is mp::UsageError. "mpi" needs multiproc::mpi linked and a run under an MPI
/// launcher with at least 2 ranks (mp::ProcessError otherwise, never a hang).
Context get_context(std::string_view method = {});

/// Sets the global default start method once. A second call throws mp::UsageError unless
/// force is true; an empty method with force resets to "not set".
void set_start_method(std::string_view method, bool force = false);

/// The default start method's name. When nothing was set: std::nullopt if allow_none, else
/// the default ("fork") is fixed and returned.
std::optional<std::string> get_start_method(bool allow_none = false);

namespace detail {
/// The pid of this process's forkserver, 0 when none runs (for leak checkers and tests).
[[nodiscard]] int forkserver_pid() noexcept;
/// Stops this process's forkserver, if any, and reaps it (run at exit too; a test fixture or
/// leak checker calls it so that the server, a child of the test process, does not linger).
void stop_forkserver() noexcept;
}  // namespace detail

/// The program that spawn (and a forkserver started from now on) executes, instead of this
/// program's own binary (Python's set_executable). It must be a build of the same program:
/// a copy of this binary elsewhere is accepted; a child of another build refuses the call it
/// is given (the identity check) and exits with code 1. An empty path restores the default.
void set_executable(std::string path);
/// The program spawn executes: "/proc/self/exe" (this binary) unless set_executable chose one.
std::string get_executable();

/// The start methods available here, the default first: {"fork", "spawn", "forkserver"}.
std::vector<std::string> get_all_start_methods();

}  // namespace mp
