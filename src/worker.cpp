// The worker process of the task engine: runs batches of shipped calls until told to exit.
// Protocol: src/engine_protocol.hpp.
#include <signal.h>
#include <sys/uio.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine_protocol.hpp"
#include "exception_trace.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/detail/task.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/socket.hpp"

namespace mp::detail {

namespace {
std::atomic<std::uint64_t>* g_progress = nullptr;
}  // namespace

std::atomic<std::uint64_t>* worker_progress_slot() noexcept {
    return g_progress;
}

namespace {
int g_socket = -1;
}  // namespace

int wire::worker_socket() noexcept { return g_socket; }

namespace wire {
namespace {

// joblib's list (loky's _thread_limit variables), set in workers the user left alone.
constexpr const char* kThreadVars[] = {
    "OMP_NUM_THREADS",     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS",
};

// Results of tasks that take this long are sent at once rather than with the rest of their
// batch: a crash later in the batch then loses little finished work.
constexpr auto kFlushAfter = std::chrono::milliseconds(1);
// A frame's payload buffer starts at this size and doubles as its bytes arrive.
constexpr std::size_t kFirstStep = std::size_t{64} << 10;

class Reader {
public:
    explicit Reader(int sock) : sock_(sock) {}

    // The next frame: false when the parent is gone. payload() and fds() hold it until the next.
    bool next(FrameHeader& h) {
        fds_.erase(fds_.begin(), fds_.begin() + static_cast<std::ptrdiff_t>(taken_));
        taken_ = 0;
        if (!read_exact(&h, sizeof h)) return false;
        if (h.length > max_frame) throw DecodeError("multiproc: worker: corrupt frame length");
        // The buffer grows with the bytes that arrive (doubling), never to a length announced
        // ahead of them: a corrupt header costs what was sent, not what it claims.
        const auto n = static_cast<std::size_t>(h.length);
        std::size_t got = 0;
        buf_.clear();
        while (got < n) {
            buf_.resize(std::min(n, std::max({kFirstStep, got * 2, buf_.capacity()})));
            if (!read_exact(buf_.data() + got, buf_.size() - got)) return false;
            got = buf_.size();
        }
        if (fds_.size() < h.nfds) throw DecodeError("multiproc: worker: descriptors missing");
        taken_ = h.nfds;
        return true;
    }
    std::span<const std::byte> payload() const noexcept { return buf_; }
    std::span<UniqueFd> fds() noexcept { return std::span<UniqueFd>(fds_.data(), taken_); }

private:
    bool read_exact(void* p, std::size_t n) {
        auto* c = static_cast<char*>(p);
        while (n) {
            std::size_t r = sys::recv_some(sock_, c, n, fds_);
            if (r == 0) return false;
            c += r;
            n -= r;
        }
        return true;
    }
    int sock_;
    std::vector<std::byte> buf_;
    std::vector<UniqueFd> fds_;
    std::size_t taken_ = 0;
};

template <class T>
void patch(std::vector<std::byte>& b, std::size_t at, T v) {
    std::memcpy(b.data() + at, &v, sizeof v);
}

void send_frame(int sock, Kind kind, std::vector<std::byte>& bytes, const std::vector<int>& fds) {
    // bytes starts with room for the header.
    FrameHeader h{static_cast<std::uint32_t>(kind), static_cast<std::uint32_t>(fds.size()),
                  bytes.size() - sizeof(FrameHeader)};
    std::memcpy(bytes.data(), &h, sizeof h);
    iovec iov{bytes.data(), bytes.size()};
    sys::send_all(sock, &iov, 1, fds);
}

void send_simple(int sock, Kind kind, const std::vector<std::byte>& payload = {}) {
    std::vector<std::byte> b(sizeof(FrameHeader));
    b.insert(b.end(), payload.begin(), payload.end());
    send_frame(sock, kind, b, {});
}

// Runs the initializer; false (after telling the parent why) when it threw.
bool run_initializer(int sock, std::span<const std::byte> call, std::span<UniqueFd> fds) {
    Encoder out;
    try {
        run_shipped_task(call, fds, out);
    } catch (...) {
        out.bytes().clear();
        encode_task_error(out, std::current_exception());
    }
    const auto& b = out.bytes();
    if (!b.empty() && b[0] == static_cast<std::byte>(TaskStatus::ok)) return true;
    send_simple(sock, Kind::init_failed, std::vector<std::byte>(b.begin() + 1, b.end()));
    return false;
}

class ResultBatch {
public:
    ResultBatch() { reset(); }
    Encoder& begin(std::uint64_t id) {
        ++count_;
        e_.write_bytes(&id, sizeof id);
        rec_ = e_.bytes().size();
        const std::uint64_t ns = 0;
        const std::uint32_t nfds = 0;
        e_.write_bytes(&ns, sizeof ns);
        e_.write_bytes(&nfds, sizeof nfds);
        e_.write_size(0);
        fds_before_ = e_.fds().size();
        return e_;
    }
    void end(std::uint64_t ns) {
        auto& b = e_.bytes();
        patch(b, rec_, ns);
        patch(b, rec_ + 8, static_cast<std::uint32_t>(e_.fds().size() - fds_before_));
        patch(b, rec_ + 12, static_cast<std::uint64_t>(b.size() - (rec_ + 20)));
    }
    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
    void flush(int sock) {
        if (count_ == 0) return;
        patch(e_.bytes(), sizeof(FrameHeader), count_);
        send_frame(sock, Kind::results, e_.bytes(), e_.fds());
        reset();
    }

private:
    void reset() {
        std::vector<std::byte> keep = std::move(e_.bytes());
        keep.clear();
        e_ = Encoder();
        e_.bytes() = std::move(keep);
        e_.bytes().resize(sizeof(FrameHeader) + sizeof(std::uint32_t));
        count_ = 0;
    }
    Encoder e_;
    std::uint32_t count_ = 0;
    std::size_t rec_ = 0, fds_before_ = 0;
};

void run_batch(int sock, Reader& rd, WorkerSlot* slot, ResultBatch& results) {
    auto fds = rd.fds();
    FrameRecords records(Kind::tasks, rd.payload(), fds.size());
    auto last_flush = std::chrono::steady_clock::now();
    for (FrameRecord rec; records.next(rec);) {
        const std::uint64_t id = rec.id;
        const auto call = rec.bytes;
        auto task_fds = fds.subspan(rec.first_fd, rec.nfds);
        slot->element.store(0, std::memory_order_relaxed);
        slot->task.store(id, std::memory_order_release);
        const auto t0 = std::chrono::steady_clock::now();
        Encoder& out = results.begin(id);
        const std::size_t mark = out.bytes().size();
        try {
            run_shipped_task(call, task_fds, out);
        } catch (...) {
            out.bytes().resize(mark);
            encode_task_error(out, std::current_exception());
        }
        const auto t1 = std::chrono::steady_clock::now();
        results.end(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        slot->task.store(0, std::memory_order_release);
        for (auto& f : task_fds) f.reset();
        if (t1 - last_flush >= kFlushAfter) {
            results.flush(sock);
            last_flush = std::chrono::steady_clock::now();
        }
    }
    results.flush(sock);
}

}  // namespace

void worker_main(Connection conn, WorkerBoot boot) {
    // The supervisor thread that may have forked us blocks every signal; a worker must die of
    // SIGSEGV, SIGTERM, ... as any process does. The terminal's Ctrl-C is the parent's business.
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_IGN);
    // The worker's death signal was armed as for any daemonic child (run_child): it follows
    // the parent process, whichever of its threads started the worker.
    record_throw_traces(true);
    if (boot.threads > 0) {
        const std::string n = std::to_string(boot.threads);
        for (const char* v : kThreadVars)
            if (!std::getenv(v)) ::setenv(v, n.c_str(), 0);
    }

    const int sock = conn.fileno();
    g_socket = sock;
    Reader rd(sock);
    FrameHeader h{};
    try {
        if (!rd.next(h) || h.kind != static_cast<std::uint32_t>(Kind::init) || rd.fds().empty())
            return;
        if (sys::file_size(rd.fds()[0].get()) < sizeof(WorkerSlot))
            throw DecodeError("multiproc: worker: progress slot too small");
        sys::Mapping slot_map = sys::Mapping::map_shared(rd.fds()[0].get(), sizeof(WorkerSlot));
        auto* slot = reinterpret_cast<WorkerSlot*>(slot_map.data());
        g_progress = &slot->element;
        Decoder d(rd.payload());
        const auto n = d.read_count(1);
        if (n) {
            auto call = d.take(n);
            if (!run_initializer(sock, call, rd.fds().subspan(1))) return;
        }
        send_simple(sock, Kind::ready);

        ResultBatch results;
        while (rd.next(h)) {
            if (h.kind == static_cast<std::uint32_t>(Kind::exit)) break;
            if (h.kind != static_cast<std::uint32_t>(Kind::tasks))
                throw DecodeError("multiproc: worker: unexpected frame");
            run_batch(sock, rd, slot, results);
        }
        g_progress = nullptr;
    } catch (const EOFError&) {
        // The parent went away while we were sending: nothing left to do.
    }
}

}  // namespace wire
}  // namespace mp::detail
