// Rank 0's side of the MPI transport (mpi_host.hpp). The engine's thread hands a rank's frames
// to a Channel and takes what arrived from it; the progress thread moves them with MPI
// (Isend, Iprobe + Recv, Test) and signals a Channel's eventfd when bytes arrive, so that the
// engine sleeps in poll as it does for local workers. A rank's death is seen through a pidfd
// when it runs on rank 0's host.
#include "mpi/mpi_host.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mpi/mpi_runtime.hpp"
#include "mpi/mpi_wire.hpp"
#include "multiproc/errors.hpp"
#include "sys/eventfd.hpp"
#include "sys/io.hpp"
#include "sys/pidfd.hpp"

namespace mp::detail::mpi {

namespace {

std::uint32_t g_next_session = 1;  // rank 0's engine threads, one host at a time

// How long a rank may send nothing before it counts as lost: MULTIPROC_MPI_SILENCE_TIMEOUT
// seconds, default 10 (heartbeats come every kHeartbeat).
std::chrono::seconds silence_deadline() {
    const char* v = std::getenv("MULTIPROC_MPI_SILENCE_TIMEOUT");
    const long s = v ? std::strtol(v, nullptr, 10) : 0;
    return std::chrono::seconds(s > 0 ? s : 10);
}

// One worker rank, shared by the engine's thread (through RootLink) and the progress thread.
struct Channel {
    int rank = 0;
    UniqueFd ready = sys::make_eventfd();     // readable while `incoming` holds bytes
    UniqueFd sentinel = sys::make_eventfd();  // signalled when the rank is found dead or silent
    UniqueFd pidfd;                           // the rank's process, when on rank 0's host
    std::chrono::steady_clock::time_point heard = std::chrono::steady_clock::now();
    std::mutex m;
    std::string ended;          // how it ended, once found dead or silent
    std::uint32_t session = 0;  // 0: no session open
    std::vector<std::vector<std::byte>> outgoing;
    std::deque<std::pair<std::vector<std::byte>, std::size_t>> incoming;  // message, read offset
};

class Ranks;

// The engine's link to one rank for one session.
class RootLink final : public wire::Transport {
public:
    RootLink(Ranks& ranks, Channel& ch, std::uint32_t session)
        : ranks_(ranks), ch_(ch), session_(session) {}
    void send_some() override;
    Received receive_some() override;
    pollfd poll_entry() const override { return {ch_.ready.get(), POLLIN, 0}; }
    void send_all() override { send_some(); }
    bool receive_frame(wire::Frame& f) override {
        while (!in_.next(f, "multiproc: mpi: a worker rank")) {
            if (!sys::wait_readable(ch_.ready.get(), Deadline::never())) return false;
            receive_some();
        }
        return true;
    }

private:
    Ranks& ranks_;
    Channel& ch_;
    std::uint32_t session_;
};

// Every worker rank's channel, and the progress thread that serves them: from the first pool
// on the "mpi" context until rank 0's exit (shut_down_ranks).
class Ranks {
public:
    Ranks() {
        const auto& w = world();
        for (int r = 1; r < w.size; ++r) {
            auto ch = std::make_unique<Channel>();
            ch->rank = r;
            const auto& info = w.ranks[static_cast<std::size_t>(r)];
            if (info.host == w.ranks[0].host)
                ch->pidfd = sys::pidfd_open(static_cast<pid_t>(info.pid));
            channels_.push_back(std::move(ch));
        }
        progress_ = std::thread([this] { progress(); });
    }

    // Flushes what is in flight (the exit frames) and stops the progress thread.
    void stop() noexcept {
        {
            std::lock_guard lk(wake_m_);
            stop_ = true;
            poked_ = true;
        }
        wake_cv_.notify_one();
        if (progress_.joinable()) progress_.join();
    }

    Channel& channel(std::size_t index) { return *channels_.at(index); }

    // The engine's thread queued messages.
    void poke() {
        {
            std::lock_guard lk(wake_m_);
            poked_ = true;
        }
        wake_cv_.notify_one();
    }

    std::string lost;  // what happened to the rank that died, once one did

private:
    void progress() noexcept;
    bool send_queued();
    bool receive_arrived();
    void watch();
    void declare_ended(Channel& ch, std::string how);

    std::vector<std::unique_ptr<Channel>> channels_;
    std::thread progress_;
    std::mutex wake_m_;
    std::condition_variable wake_cv_;
    bool poked_ = false;
    bool stop_ = false;
    // The progress thread's own: sends in flight.
    std::vector<std::pair<MPI_Request, std::vector<std::byte>>> inflight_;
    std::chrono::steady_clock::time_point next_watch_{};
    std::chrono::seconds silence_ = silence_deadline();
};

// Rank 0's engine threads open hosts one at a time in practice; the mutex keeps it safe anyway.
std::mutex g_ranks_m;
std::unique_ptr<Ranks> g_ranks;

// One engine's workers: ranks 1..n.
class Host final : public WorkerHost {
public:
    Host(Ranks& ranks, int n) : ranks_(ranks), n_(n) {}

    int size() const noexcept override { return n_; }

    HostedWorker open(std::size_t index) override {
        if (index >= static_cast<std::size_t>(n_))
            throw BrokenProcessPool(
                "multiproc: mpi: " + ranks_.lost +
                "; an MPI job cannot replace a lost rank, so the pool cannot go on");
        Channel& ch = ranks_.channel(index);
        std::lock_guard lk(ch.m);
        if (!ch.ended.empty())
            throw BrokenProcessPool("multiproc: mpi: MPI " + describe_rank(ch.rank) + " " +
                                    ch.ended + "; the job cannot run tasks any more");
        if (ch.session)
            throw UsageError("multiproc: mpi: " + describe_rank(ch.rank) +
                             " already serves another pool, executor or parallel_map; close "
                             "that one first");
        ch.session = g_next_session++;
        ch.incoming.clear();
        sys::drain_eventfd(ch.ready.get());
        HostedWorker hw;
        hw.link = std::make_unique<RootLink>(ranks_, ch, ch.session);
        hw.sentinel = ch.sentinel.get();
        hw.pid = world().ranks[static_cast<std::size_t>(ch.rank)].pid;
        return hw;
    }

    std::string reap(std::size_t index, std::size_t held) override {
        Channel& ch = ranks_.channel(index);
        std::string how;
        {
            std::lock_guard lk(ch.m);
            ch.session = 0;
            how = "MPI " + describe_rank(ch.rank) + " " + ch.ended;
        }
        ranks_.lost = how + "; the " + std::to_string(held) + " task" +
                      (held == 1 ? " it held is" : "s it held are") + " lost";
        doom_job(ranks_.lost);
        return how;
    }

    void close(std::size_t index, bool planned) noexcept override {
        Channel& ch = ranks_.channel(index);
        {
            std::lock_guard lk(ch.m);
            try {
                if (!planned && ch.session)
                    ch.outgoing.push_back(make_message(MessageKind::cancel, ch.session));
            } catch (...) {
            }
            ch.session = 0;
        }
        ranks_.poke();
    }

private:
    Ranks& ranks_;
    int n_;
};

void RootLink::send_some() {
    if (!out_.pending()) return;
    if (!out_.fds.empty())
        throw ProcessError(
            "multiproc: mpi: a task carries a file descriptor (a handle such as a Queue or "
            "Lock, or a vector of 1 MiB or more passed through shared memory), which cannot "
            "reach an MPI rank");
    std::vector<std::vector<std::byte>> msgs;
    split_data(msgs, session_, std::span<const std::byte>(out_.bytes).subspan(out_.sent));
    out_.bytes.clear();
    out_.sent = 0;
    {
        std::lock_guard lk(ch_.m);
        if (ch_.session != session_) return;  // closed: the rank is gone or released
        for (auto& m : msgs) ch_.outgoing.push_back(std::move(m));
    }
    ranks_.poke();
}

wire::Transport::Received RootLink::receive_some() {
    std::lock_guard lk(ch_.m);
    const auto room = in_.space();
    std::size_t got = 0;
    while (got < room.size() && !ch_.incoming.empty()) {
        auto& [msg, at] = ch_.incoming.front();
        const std::size_t n = std::min(room.size() - got, msg.size() - at);
        std::memcpy(room.data() + got, msg.data() + at, n);
        got += n;
        at += n;
        if (at == msg.size()) ch_.incoming.pop_front();
    }
    if (got) in_.commit(got);
    // Under the lock, so that a signal for bytes pushed after this drain is not lost.
    if (ch_.incoming.empty()) sys::drain_eventfd(ch_.ready.get());
    if (!got) return Received::nothing;
    return got == room.size() ? Received::filled : Received::some;
}

bool Ranks::send_queued() {
    bool any = false;
    for (auto& ch : channels_) {
        std::vector<std::vector<std::byte>> msgs;
        {
            std::lock_guard lk(ch->m);
            msgs.swap(ch->outgoing);
        }
        for (auto& m : msgs) {
            inflight_.emplace_back(MPI_REQUEST_NULL, std::move(m));
            auto& [req, bytes] = inflight_.back();
            check_mpi(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, ch->rank,
                                kTag, MPI_COMM_WORLD, &req),
                      "sending to a worker rank");
            any = true;
        }
    }
    std::erase_if(inflight_, [](auto& s) {
        int done = 0;
        MPI_Test(&s.first, &done, MPI_STATUS_IGNORE);
        return done != 0;
    });
    return any;
}

// A rank whose process exited (seen through its pidfd, on rank 0's host) or that sent nothing,
// not even a heartbeat, for the silence deadline (any host: a dead host, a cut link) has ended:
// its sentinel wakes the engine that holds it, which reaps it (Host::reap); a rank no engine
// holds ends the job at once.
void Ranks::watch() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_watch_) return;
    next_watch_ = now + std::chrono::milliseconds(5);
    for (auto& ch : channels_) {
        if (ch->pidfd && sys::pidfd_exited(ch->pidfd.get())) {
            declare_ended(*ch, "died");
            ch->pidfd.reset();
        } else if (now - ch->heard > silence_) {
            declare_ended(*ch, "sent nothing for " + std::to_string(silence_.count()) +
                                   " s, not even a heartbeat (dead host or lost link)");
        }
    }
}

void Ranks::declare_ended(Channel& ch, std::string how) {
    std::lock_guard lk(ch.m);
    if (!ch.ended.empty()) return;
    ch.ended = std::move(how);
    if (ch.session) sys::signal_eventfd(ch.sentinel.get());
    else doom_job("MPI " + describe_rank(ch.rank) + " " + ch.ended);
}

bool Ranks::receive_arrived() {
    bool any = false;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, kTag, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
        if (!flag) return any;
        any = true;
        auto msg = receive_probed(st, "receiving from a worker rank");
        const auto h = header_of(msg);
        const auto index = static_cast<std::size_t>(st.MPI_SOURCE - 1);
        if (index >= channels_.size()) continue;
        Channel& ch = *channels_[index];
        ch.heard = std::chrono::steady_clock::now();
        if (h.kind != MessageKind::data) continue;
        std::lock_guard lk(ch.m);
        if (h.session != ch.session) continue;  // what a closed session left behind
        ch.incoming.emplace_back(std::move(msg), sizeof(MessageHeader));
        sys::signal_eventfd(ch.ready.get());
    }
}

// Sends what the engine queued and takes what arrived; sleeps a little longer each idle turn
// (up to 1 ms: MPI gives no descriptor to sleep on), at once woken by a queued send. At the
// end, flushes what is in flight (the exit frames) for at most a few seconds.
void Ranks::progress() noexcept {
    using namespace std::chrono;
    auto idle = microseconds(0);
    steady_clock::time_point flush_until{};
    try {
        for (;;) {
            const bool sent = send_queued();  // both, every turn
            const bool received = receive_arrived();
            const bool busy = sent || received;
            watch();
            std::unique_lock lk(wake_m_);
            if (stop_) {
                if (flush_until == steady_clock::time_point{})
                    flush_until = steady_clock::now() + seconds(2);
                if (inflight_.empty() || steady_clock::now() > flush_until) break;
            }
            idle = busy || poked_ ? microseconds(0)
                                  : std::min(idle * 2 + microseconds(5), microseconds(1000));
            if (idle.count() && !poked_) wake_cv_.wait_for(lk, idle, [this] { return poked_; });
            poked_ = false;
        }
    } catch (const std::exception& e) {
        doom_job(std::string("rank 0's MPI transport failed: ") + e.what());
    }
    // Sends to a rank that no longer reads: MPI may still read their buffers, which stay
    // allocated until the process ends.
    static auto* orphans = new std::vector<std::vector<std::byte>>;
    for (auto& s : inflight_) {
        MPI_Request_free(&s.first);
        orphans->push_back(std::move(s.second));
    }
}

}  // namespace

std::shared_ptr<WorkerHost> open_host(int processes) {
    // The front ends fill a missing count with the local core count, which says nothing about
    // the job: a count beyond the worker ranks means all of them.
    const int ranks = world().size - 1;
    const int n = processes > 0 ? std::min(processes, ranks) : ranks;
    std::lock_guard lk(g_ranks_m);
    if (!g_ranks) g_ranks = std::make_unique<Ranks>();
    return std::make_shared<Host>(*g_ranks, n);
}

void shut_down_ranks() noexcept {
    {
        std::lock_guard lk(g_ranks_m);
        if (g_ranks) g_ranks->stop();
    }
    const auto msg = make_message(MessageKind::shutdown, 0);
    for (int r = 1; r < world().size; ++r)
        MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, r, kTag, MPI_COMM_WORLD);
}

}  // namespace mp::detail::mpi
