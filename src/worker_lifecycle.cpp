#include "worker_lifecycle.hpp"

#include <string.h>

#include <chrono>
#include <cstring>

#include "multiproc/connection.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/sigmask.hpp"

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

constexpr std::size_t kSlotBytes = 4096;

// How long a worker sent SIGTERM has to exit before SIGKILL: enough for a handler that
// flushes a file, short enough that a stuck pool recovers at once.
constexpr auto kTermGrace = std::chrono::milliseconds(500);

}  // namespace

void start_worker(Worker& w, const EngineOptions& opts, int threads, std::size_t number) {
    w = Worker{};
    auto pair = sys::make_socketpair();
    Connection child_end(std::move(pair.write));
    const wire::WorkerBoot boot{threads, 0, opts.max_memory_per_child};
    Process p = opts.context ? Process(*opts.context, &wire::worker_main, child_end, boot)
                             : Process(&wire::worker_main, child_end, boot);
    p.set_daemon(true);
    p.set_name("PoolWorker-" + std::to_string(number));
    p.start();
    child_end.close();
    w.pid = *p.pid();
    w.sentinel = p.sentinel();
    w.proc.emplace(std::move(p));
    sys::set_nonblocking(pair.read.get(), true);
    w.link = wire::socket_transport(std::move(pair.read), "multiproc: engine: a worker");
    w.slot_fd = sys::make_memfd("mp-worker-slot", kSlotBytes);
    w.slot_map = sys::Mapping::map_shared(w.slot_fd.get(), kSlotBytes);
    w.slot = new (w.slot_map.data()) wire::WorkerSlot{};

    // The init frame: the initializer's call (u64 n | n bytes; n = 0: none); descriptors: the
    // progress page, then the initializer's.
    auto& out = w.link->out();
    out.fds.push_back(w.slot_fd.get());
    std::vector<std::byte> payload(sizeof(std::uint64_t));
    std::uint64_t n = 0;
    if (opts.initializer) {
        n = opts.initializer->bytes.size();
        payload.insert(payload.end(), opts.initializer->bytes.begin(),
                       opts.initializer->bytes.end());
        for (auto& fd : opts.initializer->fds) out.fds.push_back(fd.get());
    }
    std::memcpy(payload.data(), &n, sizeof n);
    wire::put_frame(out.bytes, wire::Kind::init, payload,
                    static_cast<std::uint32_t>(out.fds.size()));
}

void retire_worker(Worker& w, WorkerExit why) {
    if (w.exiting) return;
    w.exiting = true;
    w.retire_reason = why;
    wire::put_frame(w.link->out().bytes, wire::Kind::exit);
}

bool doom_worker(Worker& w, WorkerExit why, std::uint64_t task, std::size_t element) {
    if (!w.proc || w.doom) return false;
    w.doom = why;
    w.doomed_task = task;
    w.doomed_element = element;
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

WorkerDeath reap_worker(Worker& w) {
    w.proc->join();
    const int code = w.proc->exitcode().value_or(-SIGKILL);
    WorkerDeath d;
    d.pid = w.pid;
    d.planned = w.exiting && code == 0;
    d.reason = w.doom ? *w.doom : d.planned ? w.retire_reason : WorkerExit::crash;
    d.doomed_task = w.doomed_task;
    d.culprit = w.slot ? w.slot->task.load(std::memory_order_acquire) : 0;
    d.element =
        w.slot ? static_cast<std::size_t>(w.slot->element.load(std::memory_order_relaxed)) : 0;
    d.doomed_element = w.doomed_element;
    d.was_ready = w.ready;
    d.held = std::move(w.held);
    d.how = "worker process " + std::to_string(d.pid) + " " + describe_exit(code);
    w.proc->close();
    w = Worker{};
    return d;
}

void kill_workers(std::vector<Worker>& workers, bool gently) noexcept {
    for (auto& w : workers) {
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
            w.proc->close();
        } catch (...) {
        }
        w = Worker{};
    }
}

void stop_workers(std::vector<Worker>& workers) {
    for (auto& w : workers) {
        if (!w.proc || w.exiting) continue;
        retire_worker(w);
        w.link->send_some();
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
        w.proc->close();
        w = Worker{};
    }
}

std::string describe_init_failure(pid_t pid, const std::exception_ptr& error) {
    return "the initializer failed in worker process " + std::to_string(pid) + ": " +
           what_of(error);
}

}  // namespace mp::detail
