// The one place that chooses a start method (Python's context.py).
#include "multiproc/context.hpp"

#include <array>
#include <atomic>
#include <mutex>
#include <string>

#include "context_cluster.hpp"
#include "multiproc/errors.hpp"
#include "popen.hpp"
#include "spawn.hpp"

namespace mp {
namespace {

struct MethodEntry {
    StartMethod method;
    std::string_view name;
    detail::LaunchFn launch;
};

// Default first.
constexpr std::array<MethodEntry, 3> kMethods{{
    {StartMethod::fork, "fork", &detail::launch_fork},
    {StartMethod::spawn, "spawn", &detail::launch_spawn},
    {StartMethod::forkserver, "forkserver", &detail::launch_forkserver},
}};

// fork is the default: it runs any callable with any copyable arguments, needs no mp::init and
// is the fastest. Python 3.14 moved its default to forkserver because of threads; here that is
// one set_start_method("forkserver") away, and the reasons to keep fork are in
// docs/start_methods.md.
constexpr StartMethod kDefault = StartMethod::fork;

const MethodEntry& entry(StartMethod m) {
    for (const auto& e : kMethods)
        if (e.method == m) return e;
    if (m == StartMethod::mpi)
        throw UsageError(
            "multiproc: the \"mpi\" context runs the tasks of a Pool, ProcessPoolExecutor or "
            "parallel_map on MPI ranks; it starts no Process (use a start method for that)");
    throw UsageError("multiproc: invalid StartMethod value");
}

// "mpi": a context only where multiproc::mpi is linked, and usable only under an MPI launcher.
Context mpi_context() {
    const auto* hooks = detail::cluster();
    if (!hooks)
        throw UsageError("multiproc: cannot find context for 'mpi': link multiproc::mpi "
                         "(find_package(multiproc COMPONENTS mpi), target multiproc::mpi)");
    hooks->check();
    return Context(StartMethod::mpi);
}

// Unknown names are a usage error (Python's ValueError), never a silent fallback to another
// method. "mpi" names a context, not a start method (mpi_context).
StartMethod parse(std::string_view name) {
    if (name == "mpi")
        throw UsageError("multiproc: \"mpi\" is no start method: ask for its context, "
                         "mp::get_context(\"mpi\")");
    for (const auto& e : kMethods)
        if (e.name == name) return e.method;
    std::string all;
    for (const auto& m : get_all_start_methods()) all += (all.empty() ? "" : ", ") + m;
    throw UsageError("multiproc: cannot find context for '" + std::string(name) +
                     "' (available start methods: " + all + ")");
}

// Python's DefaultContext._actual_context: kUnset or a StartMethod. Atomic rather than under a
// mutex, because a fork child sets it (force_start_method) and a mutex held by another thread
// at fork time would stay held forever in the child.
constexpr int kUnset = -1;
std::atomic<int> g_actual{kUnset};

// The global default, fixed to kDefault if it was not set yet.
StartMethod fix_default() noexcept {
    int expected = kUnset;
    g_actual.compare_exchange_strong(expected, static_cast<int>(kDefault));
    return static_cast<StartMethod>(g_actual.load());
}

}  // namespace

std::string_view to_string(StartMethod m) noexcept {
    switch (m) {
        case StartMethod::fork: return "fork";
        case StartMethod::spawn: return "spawn";
        case StartMethod::forkserver: return "forkserver";
        case StartMethod::mpi: return "mpi";
    }
    return "?";
}

Context::Context(StartMethod m) : method_(m) {
    if (m != StartMethod::mpi) static_cast<void>(detail::launch_function(m));
}

std::string Context::get_start_method() const { return std::string(to_string(method_)); }

Context Context::get_context(std::string_view method) const {
    return method.empty() ? *this : mp::get_context(method);
}

Context get_context(std::string_view method) {
    if (method.empty()) return Context(detail::default_start_method());
    if (method == "mpi") return mpi_context();
    return Context(parse(method));
}

void set_start_method(std::string_view method, bool force) {
    // Python: set_start_method(None, force=True) forgets the choice; without force, None means
    // the default.
    const int want = !method.empty() ? static_cast<int>(parse(method))
                                     : (force ? kUnset : static_cast<int>(kDefault));
    if (force) {
        g_actual.store(want);
        return;
    }
    int expected = kUnset;
    if (!g_actual.compare_exchange_strong(expected, want))
        throw UsageError("multiproc: context has already been set");
}

std::optional<std::string> get_start_method(bool allow_none) {
    if (allow_none && g_actual.load() == kUnset) return std::nullopt;
    return std::string(to_string(fix_default()));
}

namespace {
std::mutex g_executable_mutex;
std::string g_executable;  // empty: this program's own binary
}  // namespace

void set_executable(std::string path) {
    std::lock_guard lk(g_executable_mutex);
    g_executable = std::move(path);
}

std::string get_executable() {
    std::lock_guard lk(g_executable_mutex);
    return g_executable.empty() ? std::string("/proc/self/exe") : g_executable;
}

std::vector<std::string> get_all_start_methods() {
    std::vector<std::string> out;
    out.emplace_back(to_string(kDefault));
    for (const auto& e : kMethods)
        if (e.method != kDefault) out.emplace_back(e.name);
    return out;
}

namespace detail {

LaunchFn launch_function(StartMethod m) { return entry(m).launch; }

StartMethod default_start_method() { return fix_default(); }

void force_start_method(StartMethod m) noexcept {
    g_actual.store(static_cast<int>(m), std::memory_order_relaxed);
}

}  // namespace detail
}  // namespace mp
