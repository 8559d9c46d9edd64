// A worker rank's side of the MPI transport: the engine's worker loop (serve_engine, the same
// loop as a local worker's) over a RankLink, one session after another, until rank 0 shuts the
// job down.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "engine_protocol.hpp"
#include "exception_trace.hpp"
#include "mpi/mpi_runtime.hpp"
#include "mpi/mpi_wire.hpp"
#include "multiproc/errors.hpp"

namespace mp::detail::mpi {

namespace {

bool g_shutdown = false;
// Every MPI call of a worker rank, from its main thread or its heartbeat thread, is made under
// this mutex (MPI_THREAD_SERIALIZED).
std::mutex g_mpi_m;
std::uint32_t g_last_session = 0;  // the latest session this rank served

// One session's link to rank 0. Blocking, as a worker's end is: a receive probes with a short
// sleep between tries (an idle rank costs little CPU; MPI gives no descriptor to sleep on).
class RankLink final : public wire::Transport {
public:
    void send_some() override { send_all(); }
    Received receive_some() override { return Received::nothing; }  // a worker end blocks
    pollfd poll_entry() const override { return {-1, 0, 0}; }

    void send_all() override {
        if (!out_.pending()) return;
        if (!out_.fds.empty())
            throw ProcessError(
                "multiproc: mpi: a task's result carries a file descriptor, which cannot "
                "reach rank 0");
        std::vector<std::vector<std::byte>> msgs;
        split_data(msgs, session_, std::span<const std::byte>(out_.bytes).subspan(out_.sent));
        std::lock_guard lk(g_mpi_m);
        for (auto& m : msgs)
            check_mpi(MPI_Send(m.data(), static_cast<int>(m.size()), MPI_BYTE, 0, kTag,
                               MPI_COMM_WORLD),
                      "sending to rank 0");
        out_.bytes.clear();
        out_.sent = 0;
    }

    bool receive_frame(wire::Frame& f) override {
        while (!in_.next(f, "multiproc: mpi: rank 0")) {
            if (!receive_message()) return false;
        }
        return true;
    }

private:
    // The next message of this session into the inbox; false when the session ended (cancel)
    // or the job did (shutdown).
    bool receive_message() {
        using namespace std::chrono;
        auto pause = microseconds(0);
        for (;;) {
            int flag = 0;
            MPI_Status st;
            std::unique_lock lk(g_mpi_m);
            check_mpi(MPI_Iprobe(0, kTag, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
            if (!flag) {
                lk.unlock();
                pause = std::min(pause * 2 + microseconds(5), microseconds(1000));
                std::this_thread::sleep_for(pause);
                continue;
            }
            pause = microseconds(0);
            const auto msg = receive_probed(st, "receiving from rank 0");
            lk.unlock();
            const auto h = header_of(msg);
            if (h.kind == MessageKind::shutdown) {
                g_shutdown = true;
                return false;
            }
            if (h.session <= g_last_session && h.session != session_) continue;  // stale
            if (h.kind == MessageKind::cancel) {
                if (h.session == session_) return false;
                continue;
            }
            session_ = g_last_session = h.session;
            append(std::span<const std::byte>(msg).subspan(sizeof(MessageHeader)));
            return true;
        }
    }

    void append(std::span<const std::byte> bytes) {
        while (!bytes.empty()) {
            const auto room = in_.space();
            const std::size_t n = std::min(room.size(), bytes.size());
            std::memcpy(room.data(), bytes.data(), n);
            in_.commit(n);
            bytes = bytes.subspan(n);
        }
    }

    std::uint32_t session_ = 0;
};

// Tells rank 0 every kHeartbeat that this rank lives, whatever its main thread is doing (a
// long task, a large send), until `stop`.
class Heartbeat {
public:
    Heartbeat()
        : thread_([this] {
              const auto msg = make_message(MessageKind::heartbeat, 0);
              std::unique_lock lk(m_);
              while (!cv_.wait_for(lk, kHeartbeat, [this] { return stop_; })) {
                  std::lock_guard mpi(g_mpi_m);
                  MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, kTag,
                           MPI_COMM_WORLD);
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

void serve_rank() {
    record_throw_traces(true);
    try {
        Heartbeat heartbeat;
        while (!g_shutdown) {
            RankLink link;
            wire::serve_engine(link);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "multiproc: mpi: rank %d: %s\n", world().rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
    std::exit(0);
}

}  // namespace mp::detail::mpi
