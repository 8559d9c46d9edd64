// A worker rank's side of the MPI transport: a relay. The rank runs no task itself: each of its
// slots (slot_count()) is a local worker process, started as a local pool starts one
// (worker_lifecycle.hpp: start_worker under the spawn start method, a fresh exec, since a bare
// fork after MPI_Init is unsafe with transports that register memory) and linked to the rank by
// a socket. The rank moves frames between rank 0's messages for a slot and that slot's socket.
// A slot's worker lives for one session (init frame .. exit frame, as a local worker's life); a
// worker that dies mid-session is reported to rank 0 (slot_died), which fails or retries the
// task it ran as a local pool does, and opens the slot again.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine_protocol.hpp"
#include "exception_trace.hpp"
#include "mpi/mpi_pause.hpp"
#include "mpi/mpi_runtime.hpp"
#include "mpi/mpi_wire.hpp"
#include "multiproc/errors.hpp"
#include "sys/cpus.hpp"
#include "worker_lifecycle.hpp"

namespace mp::detail::mpi {

namespace {

// Every MPI call of a worker rank, from its relay loop or its heartbeat thread, is made under
// this mutex (MPI_THREAD_SERIALIZED).
std::mutex g_mpi_m;

int env_count(const char* name) {
    const char* v = std::getenv(name);
    const long n = v ? std::strtol(v, nullptr, 10) : 0;
    return n > 0 && n < 1 << 20 ? static_cast<int>(n) : 0;
}

void send_to_root(const std::vector<std::vector<std::byte>>& msgs) {
    std::lock_guard lk(g_mpi_m);
    for (const auto& m : msgs)
        check_mpi(MPI_Send(m.data(), static_cast<int>(m.size()), MPI_BYTE, 0, kTag, job_comm()),
                  "sending to rank 0");
}

// One slot: its worker while one runs, the session it serves.
struct Slot {
    std::uint32_t index = 0;
    std::uint32_t session = 0;       // the session its worker serves (0: none)
    std::uint32_t last_session = 0;  // the latest session it was sent: older ones are stale
    wire::FrameInbox from_root;      // the session's bytes from rank 0, cut into frames here
    bool retire_asked = false;       // its worker's retirement was asked of rank 0
    // Time limits of the tasks sent to its worker (task id -> ns), enforced here (limits frame).
    std::unordered_map<std::uint64_t, std::int64_t> limits;
    std::uint64_t timed_out = 0;        // the task its worker was killed for overrunning
    std::size_t timed_out_element = 0;  // the item of that task it was running
};

// The rank's slots and the loop that relays between them and rank 0.
class Relay {
public:
    explicit Relay(int slots) : slots_(static_cast<std::size_t>(slots)), workers_(slots_.size()) {
        for (std::size_t i = 0; i < slots_.size(); ++i)
            slots_[i].index = static_cast<std::uint32_t>(i);
        context_ = get_context("spawn");
        const int omp = env_count("OMP_NUM_THREADS");
        threads_ = omp ? omp : std::max(1, sys::allowed_cpu_count() / slots);
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;
    ~Relay() { kill_workers(workers_); }

    // Until rank 0 shuts the job down. Waits on the workers' sockets and on MPI at once: MPI
    // gives no descriptor, so between probes a wait on the sockets for a ProbePause, so that a
    // batch rank 0 sends right after a result reaches the idle worker in microseconds, and a
    // result the worker writes leaves at once.
    void run() {
        ProbePause pause;
        bool busy = false;
        std::vector<pollfd> pfds;
        std::vector<std::pair<std::size_t, bool>> polled;  // per entry: (slot, sentinel)
        for (;;) {
            if (!take_messages(busy)) return;
            enforce_limits();
            pfds.clear();
            polled.clear();
            add_poll_entries(workers_, pfds, polled);
            const int ready =
                sys::poll_until(pfds.data(), pfds.size(), Deadline(Timeout(pause.next(busy))));
            busy = false;
            for (std::size_t k = 0; ready > 0 && k < pfds.size(); ++k) {
                if (!pfds[k].revents) continue;
                auto [i, sentinel] = polled[k];
                if (!workers_[i].running()) continue;
                if (sentinel) on_worker_end(i);
                else pump(i);
                busy = true;
            }
        }
    }

private:
    // Every message that arrived; false at shutdown. `busy` when any did.
    bool take_messages(bool& busy) {
        for (;;) {
            int flag = 0;
            MPI_Status st;
            std::vector<std::byte> msg;
            {
                std::lock_guard lk(g_mpi_m);
                check_mpi(MPI_Iprobe(0, kTag, job_comm(), &flag, &st), "MPI_Iprobe");
                if (!flag) return true;
                msg = receive_probed(st, "receiving from rank 0", spare_.take());
            }
            busy = true;
            const auto h = trailer_of(msg);
            if (h.kind == MessageKind::shutdown) return false;
            if (h.slot >= slots_.size())
                throw DecodeError("multiproc: mpi: a message for slot " + std::to_string(h.slot) +
                                  " of a rank with " + std::to_string(slots_.size()));
            Slot& s = slots_[h.slot];
            if (h.session < s.last_session) continue;  // stale: a closed session's
            if (h.kind == MessageKind::cancel) {
                if (h.session == s.session) end_session(h.slot);
                continue;
            }
            if (h.kind == MessageKind::kill) {
                // Its death is reported (slot_died) with the task it ran, as any other.
                if (h.session == s.session && workers_[h.slot].proc) workers_[h.slot].proc->kill();
                continue;
            }
            if (h.kind != MessageKind::data) continue;
            if (h.session != s.last_session) {
                // A new session: a worker still ending the previous one is not waited for.
                end_session(h.slot);
                s.session = s.last_session = h.session;
                s.from_root = wire::FrameInbox{};
            } else if (h.session != s.session) {
                continue;  // the session whose worker died: what rank 0 sent before it knew
            }
            const std::size_t n = body_of(msg).size();
            if (pass_on(h.slot, msg, n)) continue;
            spare_.keep(s.from_root.append(std::move(msg), n));
            to_worker(h.slot);
        }
    }

    // A message of whole tasks frames for a running worker with nothing else queued goes to its
    // socket as it is: the message's buffer becomes the worker's outbox (no copy of the batch).
    bool pass_on(std::size_t i, std::vector<std::byte>& msg, std::size_t n) {
        Worker& w = workers_[i];
        if (!slots_[i].from_root.empty() || !w.running() || w.link->closed()) return false;
        auto& out = w.link->out();
        if (out.pending() || !wire::whole_frames_of(std::span(msg).first(n), wire::Kind::tasks))
            return false;
        msg.resize(n);
        out.bytes.swap(msg);
        out.sent = 0;
        spare_.keep(std::move(msg));
        w.link->send_some();
        return true;
    }

    // The whole frames rank 0 sent for the slot, to its worker: the init frame starts the
    // worker (with the initializer it carries), the exit frame retires it.
    void to_worker(std::size_t i) {
        Slot& s = slots_[i];
        Worker& w = workers_[i];
        wire::Frame f;
        while (s.from_root.next(f, "multiproc: mpi: rank 0")) {
            if (f.kind() == wire::Kind::init) {
                start(i, f.payload);
            } else if (!w.running()) {
                throw DecodeError("multiproc: mpi: a frame for a slot before its init frame");
            } else if (f.kind() == wire::Kind::exit) {
                retire_worker(w);
            } else if (f.kind() == wire::Kind::limits) {
                add_limits(i, f.payload);
            } else if (f.kind() == wire::Kind::tasks) {
                wire::put_frame(w.link->out().bytes, wire::Kind::tasks, f.payload);
            } else {
                throw DecodeError("multiproc: mpi: an unexpected frame from rank 0");
            }
        }
        if (w.running() && !w.link->closed()) w.link->send_some();
    }

    // A limits frame: (u64 id | i64 ns) per task of the next batch with a time limit. The
    // worker then stamps the start of every item, as for a local pool that watches limits.
    void add_limits(std::size_t i, std::span<const std::byte> payload) {
        constexpr std::size_t kPair = sizeof(std::uint64_t) + sizeof(std::int64_t);
        if (payload.size() % kPair)
            throw DecodeError("multiproc: mpi: a limits frame of " +
                              std::to_string(payload.size()) + " bytes");
        for (std::size_t at = 0; at < payload.size(); at += kPair) {
            std::uint64_t id = 0;
            std::int64_t ns = 0;
            std::memcpy(&id, payload.data() + at, sizeof id);
            std::memcpy(&ns, payload.data() + at + sizeof id, sizeof ns);
            slots_[i].limits[id] = ns;
        }
        if (workers_[i].slot) workers_[i].slot->stamp_items.store(1, std::memory_order_relaxed);
    }

    // Kills a worker whose running task (or chunk item) has overrun its limit; rank 0 fails the
    // task with mp::TimeoutError when its death is told (on_worker_end).
    void enforce_limits() {
        const std::int64_t now = monotonic_ns();
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            Slot& s = slots_[i];
            Worker& w = workers_[i];
            if (s.limits.empty() || s.timed_out || !w.proc || !w.slot) continue;
            // The start time after the ids it belongs to (see run_batch): never an earlier one's.
            const std::uint64_t running = w.slot->task.load(std::memory_order_acquire);
            const auto element = w.slot->element.load(std::memory_order_acquire);
            const std::int64_t started = w.slot->started_ns.load(std::memory_order_relaxed);
            const auto it = s.limits.find(running);
            if (it == s.limits.end() || now - started < it->second) continue;
            s.timed_out = running;
            s.timed_out_element = static_cast<std::size_t>(element);
            w.proc->kill();
        }
    }

    // The init frame's payload: u64 n | n bytes of the initializer call | u64 memory bound
    // (engine_protocol.hpp).
    void start(std::size_t i, std::span<const std::byte> init) {
        Decoder d(init);
        const auto n = d.read_count(1);
        EngineOptions o;
        o.context = context_;
        if (n) {
            const auto call = d.take(n);
            o.initializer.emplace();
            o.initializer->bytes.assign(call.begin(), call.end());
        }
        std::uint64_t max_rss = 0;
        d.read_bytes(&max_rss, sizeof max_rss);
        o.max_memory_per_child = static_cast<std::size_t>(max_rss);
        slots_[i].retire_asked = false;
        slots_[i].limits.clear();
        slots_[i].timed_out = 0;
        start_worker(workers_[i], o, threads_, ++started_, i);
    }

    // Sends what is pending to the worker and what it sent to rank 0.
    void pump(std::size_t i) {
        Worker& w = workers_[i];
        Slot& s = slots_[i];
        w.link->send_some();
        std::vector<std::byte> bytes;
        wire::Frame f;
        for (;;) {
            const auto got = w.link->receive_some();
            while (w.link->in().next(f, "multiproc: mpi: a slot's worker")) {
                if (!f.fds.empty())
                    throw ProcessError(
                        "multiproc: mpi: a task's result carries a file descriptor, which "
                        "cannot reach rank 0");
                if (!s.limits.empty() && f.kind() == wire::Kind::results) {
                    wire::FrameRecords records(wire::Kind::results, f.payload, 0);
                    for (wire::FrameRecord rec; records.next(rec);) s.limits.erase(rec.id);
                }
                wire::put_frame(bytes, f.kind(), f.payload);
            }
            if (got != wire::Transport::Received::filled) break;
        }
        // Over its memory bound (its progress page says so, after a batch): rank 0 retires it,
        // as a local pool retires a local worker.
        if (!bytes.empty() && !s.retire_asked && w.slot &&
            w.slot->retire.load(std::memory_order_relaxed)) {
            wire::put_frame(bytes, wire::Kind::retire);
            s.retire_asked = true;
        }
        if (bytes.empty() || !s.session) return;
        std::vector<std::vector<std::byte>> msgs;
        split_data(msgs, s.session, std::move(bytes), s.index);
        send_to_root(msgs);
    }

    // The worker's process ended: what it sent first goes on; a death mid-session is told to
    // rank 0 with the task it ran (its progress page), so that rank 0 treats it as a local
    // pool treats a dead worker, and so is a retirement (the exit frame, after maxtasksperchild
    // tasks), so that rank 0 opens the slot again.
    void on_worker_end(std::size_t i) {
        Worker& w = workers_[i];
        Slot& s = slots_[i];
        pump(i);
        const WorkerDeath d = reap_worker(w);
        if (!s.session) return;
        SlotDeath sd{0, 0, 0, static_cast<std::uint64_t>(d.pid)};
        if (!d.planned && s.timed_out) {  // killed here, over its task's limit
            sd.timed_out = 1;
            sd.culprit = s.timed_out;
            sd.element = s.timed_out_element;
        } else if (!d.planned) {
            sd.culprit = d.culprit;
            sd.element = d.element;
        }
        // "worker process 4711 (slot 1 of MPI rank 2 (pid 80 on host n1)) was killed by ..."
        const std::string who = "worker process " + std::to_string(d.pid);
        const std::string how = who + " (slot " + std::to_string(s.index) + " of MPI " +
                                describe_rank(world().rank) + ")" + d.how.substr(who.size());
        std::vector<std::byte> body(sizeof sd + how.size());
        std::memcpy(body.data(), &sd, sizeof sd);
        std::memcpy(body.data() + sizeof sd, how.data(), how.size());
        const auto kind = d.planned ? MessageKind::slot_retired : MessageKind::slot_died;
        send_to_root({make_message(kind, s.session, body, s.index)});
        s.session = 0;
    }

    // Rank 0 closed the session without its exit frame (a terminated pool), or opened the
    // next: the worker goes at once, and nothing of it is reported.
    void end_session(std::size_t i) {
        slots_[i].session = 0;
        if (!workers_[i].running()) return;
        std::vector<Worker> one(1);
        std::swap(one[0], workers_[i]);
        kill_workers(one);
    }

    std::vector<Slot> slots_;
    std::vector<Worker> workers_;     // by slot
    std::optional<Context> context_;  // the slot workers' start method: spawn
    int threads_ = 1;                 // OMP_NUM_THREADS & co. of a slot's worker
    SpareBuffers<1> spare_;           // a buffer for the next message (receive_probed)
    std::size_t started_ = 0;
};

// Tells rank 0 every kHeartbeat that this rank lives, whatever its main thread is doing (a
// large send), until destroyed.
class Heartbeat {
public:
    Heartbeat()
        : thread_([this] {
              const auto msg = make_message(MessageKind::heartbeat, 0);
              std::unique_lock lk(m_);
              while (!cv_.wait_for(lk, kHeartbeat, [this] { return stop_; })) {
                  std::lock_guard mpi(g_mpi_m);
                  MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, kTag, job_comm());
              }
          }) {}
    Heartbeat(const Heartbeat&) = delete;
    Heartbeat& operator=(const Heartbeat&) = delete;
    ~Heartbeat() {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace

int slot_count() {
    if (const int n = env_count("MULTIPROC_MPI_TASKS_PER_RANK")) return n;
    const int omp = env_count("OMP_NUM_THREADS");
    return std::max(1, sys::allowed_cpu_count() / std::max(1, omp));
}

void serve_rank() {
    record_throw_traces(true);
    try {
        // Before any thread: the slots' workers inherit it.
        ::setenv(kSlotRankVar, std::to_string(world().rank).c_str(), 1);
        Relay relay(world().ranks.at(static_cast<std::size_t>(world().rank)).slots);
        Heartbeat heartbeat;
        relay.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "multiproc: mpi: rank %d: %s\n", world().rank, e.what());
        MPI_Abort(job_comm(), 1);
    }
    finalize();
    std::exit(0);
}

}  // namespace mp::detail::mpi
