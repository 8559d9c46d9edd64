// Rank 0's side of the MPI transport (mpi_host.hpp). Every slot of every worker rank is one of
// the engine's workers, with a Channel: the engine's thread hands a slot's frames to its Channel
// and takes what arrived from it; the progress thread moves them with MPI (Isend, Iprobe + Recv,
// Test) and signals a Channel's eventfd when bytes arrive, so that the engine sleeps in poll as
// it does for local workers. A rank's death is seen through a pidfd when it runs on rank 0's
// host, else by its silence; a slot's worker's death is told by its rank (slot_died).
#include "mpi/mpi_host.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mpi/mpi_pause.hpp"
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

// One slot of a worker rank, shared by the engine's thread (through RootLink) and the progress
// thread.
struct Channel {
    int rank = 0;
    std::uint32_t slot = 0;
    UniqueFd ready = sys::make_eventfd();  // readable while `incoming` holds bytes
    // Signalled when the rank is found dead or silent, or the slot's worker died.
    UniqueFd sentinel = sys::make_eventfd();
    std::mutex m;
    std::string ended;                // how the rank ended, once found dead or silent
    std::optional<HostedDeath> died;  // how the slot's worker died, until reaped
    std::uint32_t session = 0;        // 0: no session open
    std::vector<std::vector<std::byte>> outgoing;
    std::deque<std::vector<std::byte>> incoming;  // messages, with their trailers
    SpareBuffers<2> spare;                        // buffers of sent messages, for the next batches
};

// A worker rank as the progress thread watches it.
struct RankWatch {
    int rank = 0;
    UniqueFd pidfd;  // its process, when on rank 0's host
    std::chrono::steady_clock::time_point heard = std::chrono::steady_clock::now();
    bool ended = false;
    std::vector<std::size_t> channels;  // its slots' channels, by slot
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
    // The channels go round the ranks, slot 0 of each first: an engine that asks for fewer
    // workers than there are slots spreads its tasks over the ranks.
    Ranks() {
        const auto& w = world();
        int most = 0;
        for (int r = 1; r < w.size; ++r) {
            RankWatch rw;
            rw.rank = r;
            const auto& info = w.ranks[static_cast<std::size_t>(r)];
            if (info.host == w.ranks[0].host)
                rw.pidfd = sys::pidfd_open(static_cast<pid_t>(info.pid));
            most = std::max(most, info.slots);
            watches_.push_back(std::move(rw));
        }
        for (int s = 0; s < most; ++s) {
            for (auto& rw : watches_) {
                if (s >= w.ranks[static_cast<std::size_t>(rw.rank)].slots) continue;
                auto ch = std::make_unique<Channel>();
                ch->rank = rw.rank;
                ch->slot = static_cast<std::uint32_t>(s);
                rw.channels.push_back(channels_.size());
                channels_.push_back(std::move(ch));
            }
        }
        progress_ = std::thread([this] { progress(); });
    }

    std::size_t size() const noexcept { return channels_.size(); }

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

    // A buffer the engine's inbox no longer needs, for the progress thread's next receive.
    void give_back(std::vector<std::byte>&& buf) {
        std::lock_guard lk(spare_m_);
        recv_spares_.keep(std::move(buf));
    }

    std::string lost;  // what happened to the rank that died, once one did

private:
    void progress() noexcept;
    bool send_queued();
    bool receive_arrived();
    void watch();
    void declare_ended(RankWatch& rw, const std::string& how);
    void slot_died(RankWatch& rw, const MessageTrailer& t, std::span<const std::byte> body);

    std::vector<RankWatch> watches_;  // by rank - 1
    std::vector<std::unique_ptr<Channel>> channels_;
    std::thread progress_;
    std::mutex wake_m_;
    std::condition_variable wake_cv_;
    bool poked_ = false;
    bool stop_ = false;
    // The progress thread's own: sends in flight, and the channel each buffer goes back to.
    struct Send {
        MPI_Request req = MPI_REQUEST_NULL;
        std::vector<std::byte> bytes;
        Channel* ch = nullptr;
    };
    std::vector<Send> inflight_;
    std::chrono::steady_clock::time_point next_watch_{};
    std::mutex spare_m_;
    SpareBuffers<4> recv_spares_;  // see give_back
    std::chrono::seconds silence_ = silence_deadline();
};

// Rank 0's engine threads open hosts one at a time in practice; the mutex keeps it safe anyway.
std::mutex g_ranks_m;
std::unique_ptr<Ranks> g_ranks;

// One engine's workers: the first n channels (slots of the worker ranks).
class Host final : public WorkerHost {
public:
    Host(Ranks& ranks, int n) : ranks_(ranks), n_(n) {}

    int size() const noexcept override { return n_; }

    HostedWorker open(std::size_t index) override {
        Channel& ch = ranks_.channel(index);
        std::lock_guard lk(ch.m);
        if (!ch.ended.empty() && !ranks_.lost.empty())
            throw BrokenProcessPool(
                "multiproc: mpi: " + ranks_.lost +
                "; an MPI job cannot replace a lost rank, so the pool cannot go on");
        if (!ch.ended.empty())
            throw BrokenProcessPool("multiproc: mpi: MPI " + describe_rank(ch.rank) + " " +
                                    ch.ended + "; the job cannot run tasks any more");
        if (ch.session)
            throw UsageError("multiproc: mpi: " + describe_rank(ch.rank) +
                             " already serves another pool, executor or parallel_map; close "
                             "that one first");
        ch.session = g_next_session++;
        ch.incoming.clear();
        ch.died.reset();
        sys::drain_eventfd(ch.ready.get());
        sys::drain_eventfd(ch.sentinel.get());
        HostedWorker hw;
        hw.link = std::make_unique<RootLink>(ranks_, ch, ch.session);
        hw.sentinel = ch.sentinel.get();
        hw.pid = world().ranks[static_cast<std::size_t>(ch.rank)].pid;
        return hw;
    }

    HostedDeath reap(std::size_t index, std::size_t held) override {
        Channel& ch = ranks_.channel(index);
        std::string how;
        {
            std::lock_guard lk(ch.m);
            ch.session = 0;
            if (ch.died && ch.ended.empty()) {
                // Only the slot's worker: the rank lives and opens the slot again.
                HostedDeath d = std::move(*ch.died);
                ch.died.reset();
                return d;
            }
            how = "MPI " + describe_rank(ch.rank) + " " + ch.ended;
        }
        ranks_.lost = how + "; the " + std::to_string(held) + " task" +
                      (held == 1 ? " it held is" : "s it held are") + " lost";
        doom_job(ranks_.lost);
        return {how};
    }

    void close(std::size_t index, bool planned) noexcept override {
        Channel& ch = ranks_.channel(index);
        {
            std::lock_guard lk(ch.m);
            try {
                if (!planned && ch.session)
                    ch.outgoing.push_back(make_message(MessageKind::cancel, ch.session, {},
                                                       ch.slot));
            } catch (...) {
            }
            ch.session = 0;
        }
        ranks_.poke();
    }

    void kill(std::size_t index) noexcept override {
        Channel& ch = ranks_.channel(index);
        {
            std::lock_guard lk(ch.m);
            if (!ch.session) return;
            try {
                ch.outgoing.push_back(make_message(MessageKind::kill, ch.session, {}, ch.slot));
            } catch (...) {
                return;  // out of memory: the task runs to its end instead
            }
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
    // The outbox's buffer becomes the message; a spare one takes its place.
    std::vector<std::byte> bytes;
    if (out_.sent)
        bytes.assign(out_.bytes.begin() + static_cast<std::ptrdiff_t>(out_.sent), out_.bytes.end());
    else bytes.swap(out_.bytes);
    out_.bytes.clear();
    out_.sent = 0;
    std::vector<std::vector<std::byte>> msgs;
    split_data(msgs, session_, std::move(bytes), ch_.slot);
    {
        std::lock_guard lk(ch_.m);
        if (ch_.session != session_) return;  // closed: the rank is gone or released
        for (auto& m : msgs) ch_.outgoing.push_back(std::move(m));
        out_.bytes = ch_.spare.take();
    }
    ranks_.poke();
}

wire::Transport::Received RootLink::receive_some() {
    std::lock_guard lk(ch_.m);
    // Under the lock, so that a signal for bytes pushed after this drain is not lost.
    sys::drain_eventfd(ch_.ready.get());
    if (ch_.incoming.empty()) return Received::nothing;
    for (; !ch_.incoming.empty(); ch_.incoming.pop_front()) {
        auto& msg = ch_.incoming.front();
        const std::size_t n = body_of(msg).size();
        ranks_.give_back(in_.append(std::move(msg), n));
    }
    return Received::some;
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
            auto& s = inflight_.emplace_back(Send{MPI_REQUEST_NULL, std::move(m), ch.get()});
            check_mpi(MPI_Isend(s.bytes.data(), static_cast<int>(s.bytes.size()), MPI_BYTE,
                                ch->rank, kTag, job_comm(), &s.req),
                      "sending to a worker rank");
            any = true;
        }
    }
    std::erase_if(inflight_, [](Send& s) {
        int done = 0;
        MPI_Test(&s.req, &done, MPI_STATUS_IGNORE);
        if (!done) return false;
        s.bytes.clear();  // the engine appends its next batch to it
        std::lock_guard lk(s.ch->m);
        s.ch->spare.keep(std::move(s.bytes));
        return true;
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
    for (auto& rw : watches_) {
        if (rw.pidfd && sys::pidfd_exited(rw.pidfd.get())) {
            declare_ended(rw, "died");
            rw.pidfd.reset();
        } else if (now - rw.heard > silence_) {
            declare_ended(rw, "sent nothing for " + std::to_string(silence_.count()) +
                                  " s, not even a heartbeat (dead host or lost link)");
        }
    }
}

// Every slot of the rank ends; an engine that holds one reaps it, else the job ends at once.
void Ranks::declare_ended(RankWatch& rw, const std::string& how) {
    if (rw.ended) return;
    rw.ended = true;
    bool held = false;
    for (const auto i : rw.channels) {
        Channel& ch = *channels_[i];
        std::lock_guard lk(ch.m);
        ch.ended = how;
        if (!ch.session) continue;
        held = true;
        sys::signal_eventfd(ch.sentinel.get());
    }
    if (!held) doom_job("MPI " + describe_rank(rw.rank) + " " + how);
}

// The rank's word that a slot's worker died mid-session: the engine that holds the slot reaps
// it as a dead local worker (its task failed or retried, the slot opened again); or that it
// retired (slot_retired), which the engine reaps as a local worker that exited after its tasks.
void Ranks::slot_died(RankWatch& rw, const MessageTrailer& h, std::span<const std::byte> body) {
    SlotDeath sd{};
    if (body.size() < sizeof sd || h.slot >= rw.channels.size())
        throw DecodeError("multiproc: mpi: a bad slot_died message");
    std::memcpy(&sd, body.data(), sizeof sd);
    const auto text = body.subspan(sizeof sd);
    Channel& ch = *channels_[rw.channels[h.slot]];
    std::lock_guard lk(ch.m);
    if (h.session != ch.session) return;
    ch.died = HostedDeath{std::string(reinterpret_cast<const char*>(text.data()), text.size()),
                          sd.culprit,
                          static_cast<std::size_t>(sd.element),
                          h.kind == MessageKind::slot_retired,
                          sd.timed_out != 0,
                          static_cast<pid_t>(sd.pid)};
    sys::signal_eventfd(ch.sentinel.get());
}

bool Ranks::receive_arrived() {
    bool any = false;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, kTag, job_comm(), &flag, &st), "MPI_Iprobe");
        if (!flag) return any;
        any = true;
        std::vector<std::byte> spare;
        {
            std::lock_guard lk(spare_m_);
            spare = recv_spares_.take();
        }
        auto msg = receive_probed(st, "receiving from a worker rank", std::move(spare));
        const auto h = trailer_of(msg);
        const auto index = static_cast<std::size_t>(st.MPI_SOURCE - 1);
        if (index >= watches_.size()) continue;
        RankWatch& rw = watches_[index];
        rw.heard = std::chrono::steady_clock::now();
        if (h.kind == MessageKind::slot_died || h.kind == MessageKind::slot_retired)
            slot_died(rw, h, body_of(msg));
        if (h.kind != MessageKind::data) continue;
        if (h.slot >= rw.channels.size())
            throw DecodeError("multiproc: mpi: a message for a slot the rank does not have");
        Channel& ch = *channels_[rw.channels[h.slot]];
        std::lock_guard lk(ch.m);
        if (h.session != ch.session) continue;  // what a closed session left behind
        ch.incoming.push_back(std::move(msg));
        sys::signal_eventfd(ch.ready.get());
    }
}

// Sends what the engine queued and takes what arrived; sleeps a ProbePause between turns (MPI
// gives no descriptor to sleep on), at once woken by a queued send. At the end, flushes what is
// in flight (the exit frames) for at most a few seconds.
void Ranks::progress() noexcept {
    using namespace std::chrono;
    ProbePause pause;
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
            const auto idle = pause.next(busy || poked_);
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
        MPI_Request_free(&s.req);
        orphans->push_back(std::move(s.bytes));
    }
}

}  // namespace

std::shared_ptr<WorkerHost> open_host(int processes) {
    // The front ends fill a missing count with the local core count, which says nothing about
    // the job: a count beyond the ranks' slots means all of them.
    std::lock_guard lk(g_ranks_m);
    if (!g_ranks) g_ranks = std::make_unique<Ranks>();
    const int slots = static_cast<int>(g_ranks->size());
    const int n = processes > 0 ? std::min(processes, slots) : slots;
    return std::make_shared<Host>(*g_ranks, n);
}

bool ranks_in_use() noexcept {
    std::lock_guard lk(g_ranks_m);
    return g_ranks != nullptr;
}

void shut_down_ranks() noexcept {
    {
        std::lock_guard lk(g_ranks_m);
        if (g_ranks) g_ranks->stop();
    }
    const auto msg = make_message(MessageKind::shutdown, 0);
    for (int r = 1; r < world().size; ++r)
        MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, r, kTag, job_comm());
}

}  // namespace mp::detail::mpi
