#include "worker_lifecycle.hpp"

#include <string.h>

#include <chrono>
#include <cstring>

#include "context_cluster.hpp"
#include "multiproc/connection.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/sigmask.hpp"
#include "worker_trace.hpp"

namespace mp::detail {

namespace {

std::string describe_exit(int code) {
    if (code < 0) {
        const int sig = -code;
        const char* abbrev = ::sigabbrev_np(sig);
        return "was killed by signal " + std::to_string(sig) +
               (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
    }
    return "exited with code " + std::to_string(code);
}

std::string what_of(const std::exception_ptr& ex) {
    try {
        std::rethrow_exception(ex);
    } catch (const RemoteError& e) {
        return e.type_name() + ": " + e.remote_what();
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an exception of unknown type";
    }
}

// The progress page and the trace ring (worker_trace.hpp): sparse until a trace writes it.
constexpr std::size_t kSlotBytes = wire::kSlotWithTraceBytes;

void queue_init_frame(Worker& w, const EngineOptions& opts);
void start_hosted(Worker& w, const EngineOptions& opts, std::size_t index);

// How long a worker sent SIGTERM has to exit before SIGKILL: enough for a handler that
// flushes a file, short enough that a stuck pool recovers at once.
constexpr auto kTermGrace = std::chrono::milliseconds(500);

}  // namespace

void start_worker(Worker& w, const EngineOptions& opts, int threads, std::size_t number,
                  std::size_t index) {
    if (opts.host) {
        start_hosted(w, opts, index);
        return;
    }
    w = Worker{};
    auto pair = sys::make_socketpair();
    Connection child_end(std::move(pair.write));
    const wire::WorkerBoot boot{threads, 0, opts.max_memory_per_child};
    Process p = opts.context ? Process(*opts.context, &wire::worker_main, child_end, boot)
                             : Process(&wire::worker_main, child_end, boot);
    p.set_daemon(true);
    p.set_name("PoolWorker-" + std::to_string(number));
    const std::uint64_t t0 = trace::now_ns();
    p.start();
    child_end.close();
    w.pid = *p.pid();
    w.index = index;
    w.sentinel = p.sentinel();
    w.proc.emplace(std::move(p));
    sys::set_nonblocking(pair.read.get(), true);
    w.link = wire::socket_transport(std::move(pair.read), "multiproc: engine: a worker");
    w.slot_fd = sys::make_memfd("mp-worker-slot", kSlotBytes);
    w.slot_map = sys::Mapping::map_shared(w.slot_fd.get(), kSlotBytes);
    w.slot = new (w.slot_map.data()) wire::WorkerSlot{};
    trace_worker_started(w, opts, number, t0);
    w.link->out().fds.push_back(w.slot_fd.get());
    queue_init_frame(w, opts);
}

namespace {

// The init frame: the initializer's call (u64 n | n bytes; n = 0: none), the memory bound (u64);
// descriptors: the progress page (a local worker's; already in the outbox), then the
// initializer's.
void queue_init_frame(Worker& w, const EngineOptions& opts) {
    auto& out = w.link->out();
    std::vector<std::byte> payload(sizeof(std::uint64_t));
    std::uint64_t n = 0;
    if (opts.initializer) {
        n = opts.initializer->bytes.size();
        payload.insert(payload.end(), opts.initializer->bytes.begin(),
                       opts.initializer->bytes.end());
        for (auto& fd : opts.initializer->fds) out.fds.push_back(fd.get());
    }
    std::memcpy(payload.data(), &n, sizeof n);
    const std::uint64_t max_rss = opts.max_memory_per_child;
    const auto* p = reinterpret_cast<const std::byte*>(&max_rss);
    payload.insert(payload.end(), p, p + sizeof max_rss);
    wire::put_frame(out.bytes, wire::Kind::init, payload,
                    static_cast<std::uint32_t>(out.fds.size()));
}

// A worker of the options' host: its session, then the init frame (no progress page: the
// host's workers share no memory with the supervisor).
void start_hosted(Worker& w, const EngineOptions& opts, std::size_t index) {
    w = Worker{};
    HostedWorker hw = opts.host->open(index);
    w.host = opts.host;
    w.host_index = index;
    w.index = index;
    w.pid = static_cast<pid_t>(hw.pid);
    w.sentinel = hw.sentinel;
    w.link = std::move(hw.link);
    queue_init_frame(w, opts);
}

}  // namespace

EngineOptions with_host(EngineOptions opts) {
    if (!opts.host && opts.context && opts.context->method() == StartMethod::mpi) {
        const auto* hooks = cluster();
        if (!hooks) static_cast<void>(get_context("mpi"));  // throws the reason
        opts.host = hooks->open_host(opts.processes);
    }
    return opts;
}

int worker_count(const EngineOptions& opts) {
    if (opts.host) return opts.host->size();
    return opts.processes > 0 ? opts.processes : cpu_count();
}

void retire_worker(Worker& w, RestartReason why) {
    if (w.exiting) return;
    w.exiting = true;
    w.retire_reason = why;
    wire::put_frame(w.link->out().bytes, wire::Kind::exit);
}

bool doom_worker(Worker& w, RestartReason why, std::uint64_t task, std::size_t element) {
    if (!w.running() || w.doom) return false;
    w.doom = why;
    w.doomed_task = task;
    w.doomed_element = element;
    if (w.host) {  // its host kills it at once (no SIGTERM first: it is not ours to signal)
        w.host->kill(w.host_index);
        return true;
    }
    w.kill_at = Deadline(kTermGrace);
    // A process that is already gone is reaped through its sentinel as any other.
    try {
        w.proc->terminate();
    } catch (...) {
    }
    return true;
}

Deadline escalate(Worker& w) {
    if (!w.proc || !w.kill_at) return Deadline::never();
    if (!w.kill_at->expired()) return *w.kill_at;
    w.kill_at.reset();
    try {
        w.proc->kill();
    } catch (...) {
    }
    return Deadline::never();
}

void add_poll_entries(const std::vector<Worker>& workers, std::vector<pollfd>& pfds,
                      std::vector<std::pair<std::size_t, bool>>& polled) {
    for (std::size_t i = 0; i < workers.size(); ++i) {
        const Worker& w = workers[i];
        if (!w.running()) continue;
        if (!w.link->closed()) {
            pfds.push_back(w.link->poll_entry());
            polled.emplace_back(i, false);
        }
        pfds.push_back({w.sentinel, POLLIN, 0});
        polled.emplace_back(i, true);
    }
}

WorkerDeath reap_worker(Worker& w) {
    if (w.host) {
        WorkerDeath d;
        d.pid = w.pid;
        d.index = w.index;
        d.was_ready = w.ready;
        HostedDeath hd = w.host->reap(w.host_index, w.held.size());
        if (hd.pid) d.pid = hd.pid;
        d.planned = w.exiting && hd.planned;
        d.reason = w.doom ? *w.doom : d.planned ? w.retire_reason : RestartReason::crash;
        d.doomed_task = w.doomed_task;
        d.doomed_element = w.doomed_element;
        if (hd.timed_out && !w.doom) {
            d.host_killed = true;
            d.reason = RestartReason::timeout;
            d.doomed_task = hd.culprit;
            d.doomed_element = hd.element;
        }
        d.how = std::move(hd.how);
        d.culprit = hd.culprit;
        d.element = hd.element;
        d.held = std::move(w.held);
        w = Worker{};
        return d;
    }
    w.proc->join();
    const int code = w.proc->exitcode().value_or(-SIGKILL);
    WorkerDeath d;
    d.pid = w.pid;
    d.index = w.index;
    d.planned = w.exiting && code == 0;
    d.reason = w.doom ? *w.doom : d.planned ? w.retire_reason : RestartReason::crash;
    d.doomed_task = w.doomed_task;
    d.culprit = w.slot ? w.slot->task.load(std::memory_order_acquire) : 0;
    d.element =
        w.slot ? static_cast<std::size_t>(w.slot->element.load(std::memory_order_relaxed)) : 0;
    d.doomed_element = w.doomed_element;
    d.was_ready = w.ready;
    d.held = std::move(w.held);
    d.how = "worker process " + std::to_string(d.pid) + " " + describe_exit(code);
    trace_worker_gone(w, describe_exit(code));
    w.proc->close();
    w = Worker{};
    return d;
}

void kill_workers(std::vector<Worker>& workers, bool gently) noexcept {
    for (auto& w : workers) {
        if (w.host) {
            w.host->close(w.host_index, false);
            w = Worker{};
        }
        if (!w.proc) continue;
        try {
            if (gently) w.proc->terminate();
            else w.proc->kill();
        } catch (...) {
        }
    }
    const Deadline grace(kTermGrace);
    for (auto& w : workers) {
        if (!w.proc) continue;
        try {
            if (gently) {
                w.proc->join(grace.remaining());
                if (!w.proc->exitcode()) w.proc->kill();
            }
            w.proc->join();
            trace_worker_gone(w, "was killed (the pool was terminated)");
            w.proc->close();
        } catch (...) {
        }
        w = Worker{};
    }
}

void stop_workers(std::vector<Worker>& workers) {
    for (auto& w : workers) {
        if (!w.running() || w.exiting) continue;
        retire_worker(w);
        w.link->send_some();
    }
    // A host's worker ends its session at the exit frame and stays the host's.
    for (auto& w : workers) {
        if (!w.host) continue;
        w.host->close(w.host_index, true);
        w = Worker{};
    }
    // Workers exit as soon as they read the frame; one whose socket is full (it cannot be: it
    // holds no task) or that hangs in user code is killed after a grace period.
    const Deadline grace(std::chrono::seconds(5));
    for (auto& w : workers) {
        if (!w.proc) continue;
        while (w.link->out().pending() && !w.link->closed() && !grace.expired()) {
            pollfd p = w.link->poll_entry();
            static_cast<void>(sys::poll_until(&p, 1, Deadline(std::chrono::milliseconds(10))));
            w.link->send_some();
        }
        w.proc->join(grace.remaining());
        if (!w.proc->exitcode()) {
            w.proc->kill();
            w.proc->join();
        }
        trace_worker_gone(w, describe_exit(w.proc->exitcode().value_or(-SIGKILL)));
        w.proc->close();
        w = Worker{};
    }
}

std::string describe_init_failure(pid_t pid, const std::exception_ptr& error) {
    return "the initializer failed in worker process " + std::to_string(pid) + ": " +
           what_of(error);
}

}  // namespace mp::detail
