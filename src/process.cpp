// mp::Process and the registry of started children (CPython's process.py: _children,
// _cleanup, active_children; util.py: _exit_function).
#include "multiproc/process.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>

#include "multiproc/errors.hpp"
#include "multiproc/logging.hpp"
#include "popen.hpp"
#include "spawn.hpp"
#include "sys/io.hpp"
#include "sys/process.hpp"
#include "trace_hook.hpp"

namespace mp {
namespace detail {

struct ProcessState {
    mutable std::mutex m;
    std::string name;
    std::vector<int> identity;
    bool daemon = false;
    std::string authkey;                // the child's current_process().authkey()
    std::optional<StartMethod> method;  // empty: the default, resolved at start()
    Owned<TargetCall> target;           // dropped once the child has its copy
    std::unique_ptr<Popen> popen;       // set once by start(); stable afterwards
    // The child's identity record, kept as long as this object: freeing it in start() would
    // write the heap while a fork child still shares the page (a page copied).
    std::shared_ptr<CurrentProcess::Info> child_info;
    pid_t creator = sys::current_pid();  // Python's _parent_pid
    bool starting = false;
    bool closed = false;
};

namespace {

// Started children not yet known to have ended (Python's process._children). Kept in raw
// storage so that a fork child can start afresh by placement new, without taking a lock that
// another thread of the parent may have held at fork time, and so that it is never destroyed
// before the exit-time joiner runs.
struct Registry {
    std::mutex m;
    std::vector<std::shared_ptr<ProcessState>> children;
    bool atexit_registered = false;
    std::atomic<bool> any{false};  // a child was registered (the exit-time join has work)
};
alignas(Registry) unsigned char g_registry_storage[sizeof(Registry)];

[[gnu::hot]] Registry& registry() noexcept {  // hot: a fork child runs it (current_process.cpp)
    static Registry* r = new (g_registry_storage) Registry();
    return *r;
}

void exit_handler() { join_children_at_exit(); }

// The Popen of a registered child; nullptr while its start() is still under way (a child is
// registered before it is forked: see Process::start).
Popen* popen_of(const ProcessState& st) {
    std::lock_guard lk(st.m);
    return st.popen.get();
}

// Python's _cleanup(): forget (and reap) the children that have ended.
void cleanup() {
    auto& r = registry();
    std::lock_guard lk(r.m);
    std::erase_if(r.children, [](const std::shared_ptr<ProcessState>& st) {
        try {
            Popen* p = popen_of(*st);
            return p && p->poll().has_value();
        } catch (const std::exception&) {
            return true;  // reaped elsewhere: the Process's own calls report it
        }
    });
}

std::string default_name(const std::vector<int>& identity) {
    std::string name = "Process-";
    for (std::size_t i = 0; i < identity.size(); ++i)
        name += (i ? ":" : "") + std::to_string(identity[i]);
    return name;
}

const char* const kClosed = "multiproc: process object is closed";

}  // namespace

void register_child(std::shared_ptr<ProcessState> st) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    r.children.push_back(std::move(st));
    r.any.store(true, std::memory_order_relaxed);
    if (!r.atexit_registered) {
        // Registered lazily, after the registry exists, so it runs before the registry could
        // be torn down; the registry lives in static storage and is never destroyed anyway.
        if (std::atexit(exit_handler) != 0) throw ProcessError("multiproc: atexit failed");
        r.atexit_registered = true;
    }
}

bool unregister_child(const ProcessState* st) noexcept {
    auto& r = registry();
    std::lock_guard lk(r.m);
    return std::erase_if(r.children, [st](const auto& p) { return p.get() == st; }) > 0;
}

namespace {

// The child's exit code is known: it leaves the registry, and the logger hears of it once.
void reaped(ProcessState& s, int code) noexcept {
    if (!unregister_child(&s)) return;
    if (trace::on()) {
        try {
            pid_t pid = 0;
            {
                std::lock_guard lk(s.m);
                if (s.popen) pid = s.popen->pid();
            }
            trace::process_ended(pid, code);
        } catch (...) {
            // A record lost (out of memory), never the exit.
        }
    }
    log_lazily(LogLevel::info, [&] {
        std::lock_guard lk(s.m);
        return "process " + s.name + " (pid " + std::to_string(s.popen ? s.popen->pid() : 0) +
               ") exited with code " + std::to_string(code);
    });
}

}  // namespace

[[gnu::hot]] void reset_children_after_fork() noexcept { new (&registry()) Registry(); }

[[gnu::hot]] bool has_registered_children() noexcept {
    return registry().any.load(std::memory_order_relaxed);
}

void join_children_at_exit() noexcept {
    std::vector<std::shared_ptr<ProcessState>> kids;
    try {
        auto& r = registry();
        std::lock_guard lk(r.m);
        kids = r.children;
    } catch (...) {
        return;
    }
    const pid_t me = sys::current_pid();
    // Python's util._exit_function: terminate the daemonic children, then join every child.
    for (auto& st : kids) {
        if (st->creator != me) continue;
        bool daemonic;
        Popen* p;
        {
            std::lock_guard lk(st->m);
            daemonic = st->daemon;
            p = st->popen.get();
        }
        try {
            if (p && daemonic && !p->poll()) p->terminate();
        } catch (...) {
        }
    }
    for (auto& st : kids) {
        if (st->creator != me) continue;
        try {
            if (Popen* p = popen_of(*st)) static_cast<void>(p->wait(Deadline::never()));
        } catch (...) {
        }
        unregister_child(st.get());
    }
}

ProcessState& ProcessView::state() const {
    if (!st_) throw UsageError("multiproc: use of a moved-from Process");
    return *st_;
}

namespace {

// The Popen of a started child of this process, for operation `op` (Python's assertions).
Popen* started_popen(const ProcessState& s, const char* op) {
    std::lock_guard lk(s.m);
    if (s.closed) throw UsageError(kClosed);
    if (s.creator != sys::current_pid())
        throw UsageError(std::string("multiproc: can only ") + op + " a child process");
    if (!s.popen) throw UsageError(std::string("multiproc: can only ") + op + " a started process");
    return s.popen.get();
}

// The Popen or nullptr before start (for the queries that answer "nothing yet").
Popen* popen_or_null(const ProcessState& s, const char* op) {
    {
        std::lock_guard lk(s.m);
        if (s.closed) throw UsageError(kClosed);
        if (!s.popen) return nullptr;
    }
    return started_popen(s, op);
}

}  // namespace

std::string ProcessView::name() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.name;
}

std::optional<pid_t> ProcessView::pid() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    if (s.closed) throw UsageError(kClosed);
    if (!s.popen) return std::nullopt;
    return s.popen->pid();
}

std::string ProcessView::authkey() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.authkey;
}

bool ProcessView::daemon() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.daemon;
}

bool ProcessView::is_alive() const {
    auto& s = state();
    Popen* p = popen_or_null(s, "test");
    if (!p) return false;
    if (auto code = p->poll()) {
        reaped(s, *code);
        return false;
    }
    return true;
}

std::optional<int> ProcessView::exitcode() const {
    auto& s = state();
    Popen* p = popen_or_null(s, "query");
    if (!p) return std::nullopt;
    auto code = p->poll();
    if (code) reaped(s, *code);
    return code;
}

void ProcessView::join() const { join(forever); }

void ProcessView::join(Timeout timeout) const {
    auto& s = state();
    Popen* p = started_popen(s, "join");
    const Deadline deadline(timeout);
    // Under mp::SigintGuard, Ctrl-C ends the wait for the child to end (the child is left as
    // it is); the start methods' own waits only retry.
    if (sys::sigint_armed()) {
        const int fd = p->sentinel();
        if (fd >= 0 && !sys::wait_readable(fd, deadline, sys::Interruptible::yes)) return;
    }
    if (p->wait(deadline))
        if (auto code = p->poll()) reaped(s, *code);
}

void ProcessView::terminate() const { started_popen(state(), "terminate")->terminate(); }

void ProcessView::kill() const { started_popen(state(), "kill")->kill(); }

void ProcessView::interrupt() const { started_popen(state(), "interrupt")->interrupt(); }

int ProcessView::sentinel() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    if (s.closed) throw UsageError(kClosed);
    if (!s.popen) throw UsageError("multiproc: process not started");
    const int fd = s.popen->sentinel();
    if (fd < 0)
        throw ProcessError(
            "multiproc: cannot open a descriptor watching the child (pidfd_open failed)");
    return fd;
}

}  // namespace detail

Process::Process(detail::MakeTag, std::optional<StartMethod> method,
                 detail::Owned<detail::TargetCall> target)
    : ProcessView(std::make_shared<detail::ProcessState>()) {
    auto& s = *st_;
    s.identity = detail::next_identity();
    s.name = detail::default_name(s.identity);
    s.daemon = detail::current_info()->daemon;  // Python copies the creator's config
    s.authkey = detail::current_info()->authkey;
    s.method = method;
    s.target = std::move(target);
}

void Process::start() {
    // A spawned child (or forkserver) whose main() skipped mp::init must stop here, before it
    // starts children of its own: it prints why and exits (spawn.hpp).
    detail::check_not_bootstrapping();
    auto& s = state();
    auto me = detail::current_info();
    std::shared_ptr<CurrentProcess::Info> child;
    {
        // The state lock is not held across fork: a target that touches this object in the
        // child would find it locked forever.
        std::lock_guard lk(s.m);
        if (s.closed) throw UsageError(detail::kClosed);
        if (s.popen || s.starting) throw UsageError("multiproc: cannot start a process twice");
        if (s.creator != sys::current_pid())
            throw UsageError("multiproc: can only start a process object created by the "
                             "current process");
        if (me->daemon)
            throw UsageError("multiproc: daemonic processes are not allowed to have children");
        child = std::make_shared<CurrentProcess::Info>();
        child->name = s.name;
        child->identity = s.identity;
        child->daemon = s.daemon;
        child->authkey = s.authkey;
        child->parent_pid = sys::current_pid();
        child->off_main_thread = sys::current_tid() != child->parent_pid;
        child->parent_name = me->name;
        child->parent_traced = detail::trace::children_record();
        s.starting = true;
    }
    std::unique_ptr<detail::Popen> popen;
    const std::uint64_t t0 = detail::trace::on() ? detail::trace::now_ns() : 0;
    try {
        detail::cleanup();
        const StartMethod method = s.method ? *s.method : detail::default_start_method();
        child->start_method = method;
        auto launch = detail::launch_function(method);
        // Registered before the child exists: under fork, every page this process writes
        // between the fork and the child's exit is a page copied, and a join usually follows.
        detail::register_child(st_);
        popen = launch(detail::LaunchSpec{child, s.target.get()});
        if (t0) detail::trace::process_started(popen->pid(), child->name, to_string(method), t0);
    } catch (...) {
        detail::unregister_child(&s);
        std::lock_guard lk(s.m);
        s.starting = false;
        throw;
    }
    std::lock_guard lk(s.m);
    s.popen = std::move(popen);
    s.child_info = std::move(child);
    s.starting = false;
    s.target.reset();  // the child has its own copy (Python deletes _target/_args too)
    detail::log_lazily(LogLevel::info, [&] {
        return "process " + s.name + " (pid " + std::to_string(s.popen->pid()) +
               ") started with start method " +
               std::string(mp::to_string(s.child_info->start_method));
    });
}

void Process::set_name(std::string name) {
    auto& s = state();
    std::lock_guard lk(s.m);
    s.name = std::move(name);
}

void Process::set_authkey(std::string key) {
    auto& s = state();
    std::lock_guard lk(s.m);
    if (s.closed) throw UsageError(detail::kClosed);
    if (s.popen || s.starting) throw UsageError("multiproc: process has already started");
    s.authkey = std::move(key);
}

void Process::set_daemon(bool daemonic) {
    auto& s = state();
    std::lock_guard lk(s.m);
    if (s.closed) throw UsageError(detail::kClosed);
    if (s.popen || s.starting) throw UsageError("multiproc: process has already started");
    s.daemon = daemonic;
}

void Process::close() {
    auto& s = state();
    {
        std::lock_guard lk(s.m);
        if (s.closed) return;
        if (s.popen) {
            if (s.creator != sys::current_pid())
                throw UsageError("multiproc: can only close a child process");
            if (!s.popen->poll())
                throw UsageError("multiproc: cannot close a process while it is still running; "
                                 "call join() or terminate() first");
            s.popen->close();
        }
        s.target.reset();
        s.closed = true;
    }
    detail::unregister_child(&s);
}

std::vector<ChildProcess> active_children() {
    detail::cleanup();
    std::vector<std::shared_ptr<detail::ProcessState>> kids;
    {
        auto& r = detail::registry();
        std::lock_guard lk(r.m);
        kids = r.children;
    }
    std::vector<ChildProcess> out;
    out.reserve(kids.size());
    for (auto& st : kids)
        if (detail::popen_of(*st)) out.emplace_back(std::move(st));  // started (not starting)
    return out;
}

}  // namespace mp
