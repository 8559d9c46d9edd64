// The task engine's supervisor: one thread that owns every worker socket (non-blocking, so
// one slow peer never stalls the others), every worker's pidfd, and every task in flight.
// Protocol: engine_protocol.hpp; interface and guarantees: multiproc/detail/engine.hpp.
#include "multiproc/detail/engine.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>
#include <utility>

#include "engine_protocol.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/process.hpp"
#include "sys/eventfd.hpp"
#include "sys/io.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/nbsocket.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {

// --- small pieces the headers declare ----------------------------------------------------------

OwnedCall OwnedCall::adopt(ShippedCall&& call) {
    OwnedCall c;
    c.bytes = std::move(call.bytes);
    c.fds.reserve(call.fds.size());
    for (int fd : call.fds) {
        UniqueFd borrowed(fd);
        c.fds.push_back(borrowed.dup());
        static_cast<void>(borrowed.release());
    }
    return c;
}

OwnedCall finish_owned_call(Encoder& e, std::vector<UniqueFd>& own) {
    OwnedCall c;
    c.fds.reserve(e.fds().size());
    for (int fd : e.fds()) {
        auto it = std::find_if(own.begin(), own.end(), [fd](const UniqueFd& u) { return u.get() == fd; });
        if (it != own.end()) {
            c.fds.push_back(std::move(*it));
        } else {
            UniqueFd borrowed(fd);
            c.fds.push_back(borrowed.dup());
            static_cast<void>(borrowed.release());
        }
    }
    c.bytes = std::move(e.bytes());
    return c;
}

BulkBuffer BulkBuffer::create(const void* data, std::size_t bytes) {
    BulkBuffer b;
    b.fd_ = sys::make_memfd("mp-task-arg", 0);
    sys::write_all(b.fd_.get(), data, bytes);
    b.size_ = bytes;
    return b;
}

BulkBuffer BulkBuffer::map(UniqueFd fd, std::size_t bytes) {
    if (sys::file_size(fd.get()) < bytes)
        throw DecodeError("multiproc: corrupt task: a shared argument is shorter than announced");
    BulkBuffer b;
    b.fd_ = std::move(fd);
    b.size_ = bytes;
    if (bytes) {
        void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, b.fd_.get(), 0);
        if (p == MAP_FAILED) throw_os_error("mmap");
        b.map_ = p;
    }
    return b;
}

BulkBuffer::BulkBuffer(BulkBuffer&& o) noexcept
    : fd_(std::move(o.fd_)), map_(std::exchange(o.map_, nullptr)), size_(std::exchange(o.size_, 0)) {}

BulkBuffer& BulkBuffer::operator=(BulkBuffer&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, size_);
        fd_ = std::move(o.fd_);
        map_ = std::exchange(o.map_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

BulkBuffer::~BulkBuffer() {
    if (map_) ::munmap(map_, size_);
}

void Notifier::notify_all() noexcept {
    if (count_.load(std::memory_order_seq_cst) == 0) return;
    std::lock_guard lk(m_);
    for (int fd : waiters_) sys::signal_eventfd(fd);
}

Notifier::Registration::Registration(Notifier& n) : n_(n), fd_(sys::make_eventfd()) {
    std::lock_guard lk(n_.m_);
    n_.waiters_.push_back(fd_.get());
    n_.count_.fetch_add(1, std::memory_order_seq_cst);
}

Notifier::Registration::~Registration() {
    std::lock_guard lk(n_.m_);
    std::erase(n_.waiters_, fd_.get());
    n_.count_.fetch_sub(1, std::memory_order_seq_cst);
}

bool Notifier::Registration::block(Deadline deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (sys::poll_until(&p, 1, deadline, sys::Interruptible::yes) == 0) return false;
    sys::drain_eventfd(fd_.get());
    return true;
}

// --- the wake-up channel ------------------------------------------------------------------------

// The engine's loop sleeps in poll on `fd`; wake() writes it only when the loop said it sleeps,
// and `pending` covers a wake between the loop's last look and its poll.
struct WakeChannel {
    UniqueFd fd = sys::make_eventfd();
    std::atomic<bool> sleeping{false};
    std::atomic<bool> pending{false};

    void wake() noexcept {
        pending.store(true, std::memory_order_seq_cst);
        if (sleeping.exchange(false, std::memory_order_seq_cst)) sys::signal_eventfd(fd.get());
    }
};

EngineLink::EngineLink(std::shared_ptr<WakeChannel> channel) noexcept : channel_(std::move(channel)) {}

void EngineLink::wake() const noexcept {
    channel_->wake();
}

// --- the engine ---------------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTargetTaskNs = 2e6;           // about 2 ms of work a task
constexpr std::size_t kMaxHint = std::size_t{1} << 20;
constexpr std::size_t kMaxBatchTasks = 1024;
constexpr std::size_t kMaxBatchBytes = std::size_t{4} << 20;
constexpr std::size_t kBatchesPerWorker = 2;   // one running, one prefetched
constexpr std::size_t kReadChunk = std::size_t{256} << 10;

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

template <class T>
void put(std::vector<std::byte>& b, const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + sizeof v);
}

template <class T>
T get(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

}  // namespace

class EngineImpl {
public:
    explicit EngineImpl(EngineOptions opts);
    ~EngineImpl();

    void submit(std::shared_ptr<TaskSource> src);
    void wake() noexcept;
    [[nodiscard]] std::shared_ptr<WakeChannel> wake_channel() const { return wake_; }
    void close() noexcept;
    void join();
    void terminate() noexcept;
    int processes() const noexcept { return nproc_; }
    std::vector<pid_t> worker_pids() const {
        std::lock_guard lk(m_);
        return pids_;
    }
    std::exception_ptr broken() const {
        std::lock_guard lk(m_);
        return broken_;
    }

private:
    struct Entry {
        std::shared_ptr<TaskSource> src;
        double ns_per_elem = -1;
        std::size_t inflight = 0;
    };
    struct Task {
        std::shared_ptr<Entry> entry;
        std::uint64_t tag = 0;
        std::size_t elements = 1;
        OwnedCall call;
        int deaths = 0;
        std::string history;
    };
    struct Worker {
        std::optional<Process> proc;
        pid_t pid = 0;
        int sentinel = -1;
        UniqueFd sock;
        UniqueFd slot_fd;
        sys::Mapping slot_map;
        wire::WorkerSlot* slot = nullptr;
        bool ready = false;
        bool eof = false;
        bool exiting = false;
        std::size_t tasks_sent = 0;
        std::deque<std::uint64_t> held;     // task ids, in the order sent
        std::deque<std::size_t> batches;    // tasks still owed, per batch sent
        std::vector<std::byte> out;
        std::size_t out_pos = 0;
        std::vector<int> out_fds;           // borrowed from Task::call, sent with the next bytes
        std::vector<std::byte> in;
        std::size_t in_len = 0;
        std::deque<UniqueFd> in_fds;
    };

    void run() noexcept;
    void loop();
    void start_worker(std::size_t index);
    void fill();
    bool fill_one(Worker& w, std::size_t max_tasks);
    std::size_t idle_share() const;
    bool can_take(const Worker& w, std::size_t depth) const;
    std::size_t hint_for(Entry& e) const;
    void send_some(Worker& w);
    void read_some(Worker& w);
    void handle_frame(Worker& w, const wire::FrameHeader& h, const std::byte* p);
    void handle_results(Worker& w, const std::byte* p, std::size_t n, std::uint32_t nfds);
    void on_death(std::size_t index);
    void finish_task(std::uint64_t id);
    void break_engine(std::exception_ptr err);
    void kill_all() noexcept;
    void abandon_all(const std::exception_ptr& err) noexcept;
    void graceful_stop();
    void drop_finished_entries();
    void publish_pids();

    EngineOptions opts_;
    int nproc_ = 1;
    int threads_per_worker_ = 1;
    std::string owner_;

    mutable std::mutex m_;
    std::deque<std::shared_ptr<TaskSource>> incoming_;
    bool closing_ = false;
    bool terminating_ = false;
    bool stopped_ = false;  // the loop has ended: submissions are abandoned at once
    std::exception_ptr broken_;
    std::vector<pid_t> pids_;

    // Shared with every source (EngineLink), so that a source outliving the engine wakes an
    // eventfd nobody polls instead of a freed engine.
    std::shared_ptr<WakeChannel> wake_ = std::make_shared<WakeChannel>();
    std::atomic<bool> finished_{false};
    Notifier done_;
    std::thread thread_;

    // Loop-only state.
    std::vector<Worker> workers_;
    std::deque<std::shared_ptr<Entry>> entries_;
    std::unordered_map<std::uint64_t, Task> tasks_;
    std::deque<std::uint64_t> retry_;
    std::uint64_t next_id_ = 1;
    std::size_t next_worker_name_ = 1;
    std::size_t rr_ = 0;
    double global_ns_per_task_ = -1;
};

EngineImpl::EngineImpl(EngineOptions opts) : opts_(std::move(opts)) {
    nproc_ = opts_.processes > 0 ? opts_.processes : cpu_count();
    threads_per_worker_ = std::max(1, process_cpu_count() / nproc_);
    owner_ = opts_.owner;
    workers_.resize(static_cast<std::size_t>(nproc_));
    try {
        for (std::size_t i = 0; i < workers_.size(); ++i) start_worker(i);
    } catch (...) {
        kill_all();
        throw;
    }
    publish_pids();
    // The supervisor blocks every signal, so that a process-directed SIGINT reaches a thread
    // that may be blocked in a Pool call (and interrupts it) rather than this one.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
        thread_ = std::thread([this] { run(); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        kill_all();
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

EngineImpl::~EngineImpl() {
    terminate();
}

void EngineImpl::start_worker(std::size_t index) {
    Worker& w = workers_[index];
    w = Worker{};
    auto pair = sys::make_socketpair();
    Connection child_end(std::move(pair.write));
    const wire::WorkerBoot boot{threads_per_worker_, 0};
    Process p = opts_.context ? Process(*opts_.context, &wire::worker_main, child_end, boot)
                              : Process(&wire::worker_main, child_end, boot);
    p.set_daemon(true);
    p.set_name("PoolWorker-" + std::to_string(next_worker_name_++));
    p.start();
    child_end.close();
    w.pid = *p.pid();
    w.sentinel = p.sentinel();
    w.proc.emplace(std::move(p));
    w.sock = std::move(pair.read);
    sys::set_nonblocking(w.sock.get(), true);
    w.slot_fd = sys::make_memfd("mp-worker-slot", 4096);
    w.slot_map = sys::Mapping::map_shared(w.slot_fd.get(), 4096);
    w.slot = new (w.slot_map.data()) wire::WorkerSlot{};

    // The init frame: the progress page, then the initializer (if any).
    const std::vector<std::byte>* init = opts_.initializer ? &opts_.initializer->bytes : nullptr;
    wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::init), 1, 0};
    w.out_fds.push_back(w.slot_fd.get());
    if (opts_.initializer)
        for (auto& fd : opts_.initializer->fds) w.out_fds.push_back(fd.get());
    h.nfds = static_cast<std::uint32_t>(w.out_fds.size());
    const std::uint64_t n = init ? init->size() : 0;
    h.length = sizeof n + n;
    put(w.out, h);
    put(w.out, n);
    if (init) w.out.insert(w.out.end(), init->begin(), init->end());
}

void EngineImpl::publish_pids() {
    std::vector<pid_t> p;
    for (auto& w : workers_)
        if (w.proc) p.push_back(w.pid);
    std::lock_guard lk(m_);
    pids_ = std::move(p);
}

void EngineImpl::submit(std::shared_ptr<TaskSource> src) {
    std::exception_ptr dead;
    {
        std::lock_guard lk(m_);
        if (stopped_ || terminating_) {
            dead = broken_ ? broken_
                           : std::make_exception_ptr(BrokenProcessPool(
                                 owner_ + ": the pool has been terminated; the task cannot run"));
        } else {
            incoming_.push_back(std::move(src));
        }
    }
    if (dead) {
        src->abandon(dead);
        return;
    }
    wake();
}

void EngineImpl::wake() noexcept {
    wake_->wake();
}

void EngineImpl::close() noexcept {
    {
        std::lock_guard lk(m_);
        closing_ = true;
    }
    wake();
}

void EngineImpl::join() {
    done_.wait([this] { return finished_.load(std::memory_order_acquire); }, Deadline::never());
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void EngineImpl::terminate() noexcept {
    {
        std::lock_guard lk(m_);
        terminating_ = true;
    }
    wake();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void EngineImpl::run() noexcept {
    try {
        loop();
    } catch (...) {
        // An engine failure of its own (out of memory, a broken socket layer): every task fails
        // with it rather than waiting forever.
        break_engine(std::current_exception());
        kill_all();
        abandon_all(broken());
    }
    {
        std::lock_guard lk(m_);
        stopped_ = true;
    }
    // Sources submitted while we were stopping.
    std::deque<std::shared_ptr<TaskSource>> late;
    std::exception_ptr err;
    {
        std::lock_guard lk(m_);
        late.swap(incoming_);
        err = broken_ ? broken_
                      : std::make_exception_ptr(BrokenProcessPool(
                            owner_ + ": the pool has been terminated; the task cannot run"));
    }
    for (auto& s : late) s->abandon(err);
    publish_pids();
    finished_.store(true, std::memory_order_release);
    done_.notify_all();
}

void EngineImpl::loop() {
    std::vector<pollfd> pfds;
    std::vector<std::pair<std::size_t, int>> what;  // (worker, 0 sock / 1 sentinel); wake = npos
    for (;;) {
        bool closing, terminating;
        {
            std::lock_guard lk(m_);
            for (auto& s : incoming_) entries_.push_back(std::make_shared<Entry>(Entry{std::move(s)}));
            incoming_.clear();
            closing = closing_;
            terminating = terminating_;
        }
        if (terminating) {
            kill_all();
            abandon_all(std::make_exception_ptr(BrokenProcessPool(
                owner_ + ": the pool was terminated before this task completed")));
            return;
        }
        if (auto err = broken()) {
            kill_all();
            abandon_all(err);
            return;
        }
        fill();
        for (auto& w : workers_)
            if (w.proc && !w.eof && w.out_pos < w.out.size()) send_some(w);
        drop_finished_entries();
        if (closing && entries_.empty() && tasks_.empty()) {
            graceful_stop();
            return;
        }

        pfds.clear();
        what.clear();
        pfds.push_back({wake_->fd.get(), POLLIN, 0});
        what.emplace_back(static_cast<std::size_t>(-1), 0);
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            auto& w = workers_[i];
            if (!w.proc) continue;
            if (!w.eof) {
                short ev = POLLIN;
                if (w.out_pos < w.out.size()) ev |= POLLOUT;
                pfds.push_back({w.sock.get(), ev, 0});
                what.emplace_back(i, 0);
            }
            pfds.push_back({w.sentinel, POLLIN, 0});
            what.emplace_back(i, 1);
        }
        wake_->sleeping.store(true, std::memory_order_seq_cst);
        const bool skip = wake_->pending.exchange(false, std::memory_order_seq_cst);
        int r = 0;
        if (!skip) r = sys::poll_until(pfds.data(), pfds.size(), Deadline::never());
        wake_->sleeping.store(false, std::memory_order_seq_cst);
        if (r <= 0) continue;
        std::vector<std::size_t> dead;
        for (std::size_t k = 0; k < pfds.size(); ++k) {
            if (!pfds[k].revents) continue;
            auto [i, kind] = what[k];
            if (i == static_cast<std::size_t>(-1)) {
                sys::drain_eventfd(wake_->fd.get());
                wake_->pending.store(false);
                continue;
            }
            auto& w = workers_[i];
            if (kind == 1) {
                dead.push_back(i);
                continue;
            }
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) read_some(w);
            if (!w.eof && (pfds[k].revents & POLLOUT)) send_some(w);
        }
        for (std::size_t i : dead) on_death(i);
    }
}

std::size_t EngineImpl::hint_for(Entry& e) const {
    if (e.ns_per_elem < 0) return 1;
    double h = kTargetTaskNs / std::max(e.ns_per_elem, 0.5);
    if (auto rem = e.src->remaining()) {
        // Guided scheduling: never more than a share of what is left, so the last tasks spread
        // over every worker.
        const double share = static_cast<double>(*rem) / (2.0 * nproc_);
        h = std::min(h, std::max(1.0, share));
    }
    h = std::clamp(h, 1.0, static_cast<double>(kMaxHint));
    return static_cast<std::size_t>(h);
}

bool EngineImpl::can_take(const Worker& w, std::size_t depth) const {
    if (!w.proc || w.eof || w.exiting || w.batches.size() >= depth) return false;
    return !opts_.max_tasks_per_child || w.tasks_sent < opts_.max_tasks_per_child;
}

// How many tasks an idle worker's batch may hold so that the tasks waiting now spread over every
// idle worker (the batch estimate cannot tell a long task from a short one before it has run:
// two submissions must not share one worker while another has nothing to do). Unbounded when a
// source cannot say how much it holds.
std::size_t EngineImpl::idle_share() const {
    std::size_t idle = 0;
    for (const auto& w : workers_) idle += can_take(w, 1) ? 1 : 0;
    std::size_t waiting = retry_.size();
    for (const auto& e : entries_) {
        const auto rem = e->src->remaining();
        if (!rem) return kMaxBatchTasks;
        waiting += *rem;
    }
    return idle == 0 ? kMaxBatchTasks : std::max<std::size_t>(1, (waiting + idle - 1) / idle);
}

void EngineImpl::fill() {
    // Idle workers first, each with its share of what waits; then one prefetched batch for each
    // busy worker: no task waits behind another while some worker has nothing to do.
    for (std::size_t depth = 1; depth <= kBatchesPerWorker; ++depth) {
        const std::size_t max_tasks = depth == 1 ? idle_share() : kMaxBatchTasks;
        bool progress = true;
        while (progress) {
            progress = false;
            for (std::size_t k = 0; k < workers_.size(); ++k) {
                auto& w = workers_[(rr_ + k) % workers_.size()];
                if (!can_take(w, depth)) continue;
                if (fill_one(w, max_tasks)) progress = true;
                else return;  // nothing to send to anyone
            }
            ++rr_;
        }
    }
}

bool EngineImpl::fill_one(Worker& w, std::size_t max_tasks) {
    std::size_t quota = std::min(kMaxBatchTasks, max_tasks);
    if (opts_.max_tasks_per_child)
        quota = std::min(quota, opts_.max_tasks_per_child - w.tasks_sent);
    std::vector<std::uint64_t> ids;
    std::size_t bytes = 0;
    double est = 0;
    auto add = [&](std::uint64_t id) {
        Task& t = tasks_.at(id);
        ids.push_back(id);
        bytes += t.call.bytes.size();
        const double per = t.entry->ns_per_elem >= 0 ? t.entry->ns_per_elem * static_cast<double>(t.elements)
                                                     : global_ns_per_task_;
        est += per < 0 ? kTargetTaskNs : per;
    };
    auto full = [&] { return ids.size() >= quota || bytes >= kMaxBatchBytes || est >= kTargetTaskNs; };
    while (!full() && !retry_.empty()) {
        add(retry_.front());
        retry_.pop_front();
    }
    for (std::size_t e = 0; e < entries_.size() && !full();) {
        auto& entry = entries_[e];
        if (entry->src->exhausted()) {
            ++e;
            continue;
        }
        TaskSlot slot;
        bool got = false;
        try {
            got = entry->src->pull(hint_for(*entry), slot);
        } catch (...) {
            // A source must not throw; if it does, its consumer learns of it through abandon.
            entry->src->abandon(std::current_exception());
            entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(e));
            continue;
        }
        if (!got) {
            ++e;
            continue;
        }
        const std::uint64_t id = next_id_++;
        ++entry->inflight;
        tasks_.emplace(id, Task{entry, slot.tag, std::max<std::size_t>(slot.elements, 1),
                                std::move(slot.call), 0, {}});
        add(id);
    }
    if (ids.empty()) return false;

    // u32 count | count x (u64 id | u32 nfds | u64 n | bytes)
    const std::size_t start = w.out.size();
    wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::tasks), 0, 0};
    put(w.out, h);
    put(w.out, static_cast<std::uint32_t>(ids.size()));
    std::uint32_t nfds = 0;
    for (auto id : ids) {
        Task& t = tasks_.at(id);
        put(w.out, id);
        put(w.out, static_cast<std::uint32_t>(t.call.fds.size()));
        put(w.out, static_cast<std::uint64_t>(t.call.bytes.size()));
        w.out.insert(w.out.end(), t.call.bytes.begin(), t.call.bytes.end());
        for (auto& fd : t.call.fds) w.out_fds.push_back(fd.get());
        nfds += static_cast<std::uint32_t>(t.call.fds.size());
        w.held.push_back(id);
    }
    h.nfds = nfds;
    h.length = w.out.size() - start - sizeof h;
    std::memcpy(w.out.data() + start, &h, sizeof h);
    w.batches.push_back(ids.size());
    w.tasks_sent += ids.size();
    return true;
}

void EngineImpl::send_some(Worker& w) {
    while (w.out_pos < w.out.size()) {
        iovec iov{w.out.data() + w.out_pos, w.out.size() - w.out_pos};
        const ssize_t r = sys::send_nonblocking(w.sock.get(), &iov, 1, w.out_fds);
        if (r < 0) {  // the worker is gone; its sentinel will tell us how
            w.eof = true;
            return;
        }
        if (r == 0) return;
        w.out_fds.clear();  // they rode with the first byte sent
        w.out_pos += static_cast<std::size_t>(r);
    }
    w.out.clear();
    w.out_pos = 0;
}

void EngineImpl::read_some(Worker& w) {
    for (;;) {
        if (w.in.size() - w.in_len < kReadChunk / 4) w.in.resize(std::max(w.in_len + kReadChunk, w.in.size() * 2));
        std::vector<UniqueFd> fds;
        const ssize_t r = sys::recv_nonblocking(w.sock.get(), w.in.data() + w.in_len,
                                                w.in.size() - w.in_len, fds);
        for (auto& f : fds) w.in_fds.push_back(std::move(f));
        if (r < 0) break;  // nothing more now
        if (r == 0) {
            w.eof = true;
            break;
        }
        w.in_len += static_cast<std::size_t>(r);
        // Whole frames.
        std::size_t pos = 0;
        while (w.in_len - pos >= sizeof(wire::FrameHeader)) {
            const auto h = get<wire::FrameHeader>(w.in.data() + pos);
            if (h.length > wire::max_frame)
                throw DecodeError(owner_ + ": corrupt frame from a worker");
            const std::size_t need = sizeof h + static_cast<std::size_t>(h.length);
            // Not all here yet: the buffer grows as its bytes arrive (at the top of the loop),
            // never to a length announced ahead of them.
            if (w.in_len - pos < need) break;
            handle_frame(w, h, w.in.data() + pos + sizeof h);
            pos += need;
        }
        if (pos) {
            std::memmove(w.in.data(), w.in.data() + pos, w.in_len - pos);
            w.in_len -= pos;
        }
        if (!w.proc) return;  // handle_frame stopped the worker
    }
}

void EngineImpl::handle_frame(Worker& w, const wire::FrameHeader& h, const std::byte* p) {
    switch (static_cast<wire::Kind>(h.kind)) {
        case wire::Kind::ready:
            w.ready = true;
            return;
        case wire::Kind::init_failed: {
            Decoder d(std::span<const std::byte>(p, static_cast<std::size_t>(h.length)));
            std::exception_ptr ex = decode_exception(d);
            break_engine(std::make_exception_ptr(BrokenProcessPool(
                owner_ + ": the initializer failed in worker process " + std::to_string(w.pid) +
                ": " + what_of(ex) + "; the pool cannot run tasks")));
            return;
        }
        case wire::Kind::results:
            handle_results(w, p, static_cast<std::size_t>(h.length), h.nfds);
            return;
        default:
            throw DecodeError(owner_ + ": unexpected frame from a worker");
    }
}

void EngineImpl::handle_results(Worker& w, const std::byte* p, std::size_t n, std::uint32_t nfds) {
    if (w.in_fds.size() < nfds) throw DecodeError(owner_ + ": descriptors missing from a worker's results");
    std::vector<UniqueFd> fds;
    for (std::uint32_t i = 0; i < nfds; ++i) {
        fds.push_back(std::move(w.in_fds.front()));
        w.in_fds.pop_front();
    }
    wire::FrameRecords records(wire::Kind::results, std::span<const std::byte>(p, n), fds.size());
    for (wire::FrameRecord rec; records.next(rec);) {
        const std::uint64_t id = rec.id, ns = rec.ns;
        const auto bytes = rec.bytes;
        std::span<UniqueFd> task_fds(fds.data() + rec.first_fd, rec.nfds);

        // The worker answers in the order it was sent; anything else is a protocol error.
        if (w.held.empty() || w.held.front() != id) throw DecodeError(owner_ + ": results out of order");
        w.held.pop_front();
        if (!w.batches.empty() && --w.batches.front() == 0) w.batches.pop_front();

        auto it = tasks_.find(id);
        if (it == tasks_.end()) continue;
        Task& t = it->second;
        Entry& e = *t.entry;
        const double per = static_cast<double>(ns) / static_cast<double>(t.elements);
        e.ns_per_elem = e.ns_per_elem < 0 ? per : 0.7 * e.ns_per_elem + 0.3 * per;
        const double pt = static_cast<double>(ns);
        global_ns_per_task_ = global_ns_per_task_ < 0 ? pt : 0.9 * global_ns_per_task_ + 0.1 * pt;
        try {
            e.src->complete(t.tag, bytes, task_fds);
        } catch (...) {
            e.src->fail(t.tag, std::current_exception());
        }
        finish_task(id);
    }
    if (opts_.max_tasks_per_child && w.tasks_sent >= opts_.max_tasks_per_child && w.held.empty() &&
        !w.exiting) {
        w.exiting = true;
        wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::exit), 0, 0};
        put(w.out, h);
    }
}

void EngineImpl::finish_task(std::uint64_t id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    --it->second.entry->inflight;
    tasks_.erase(it);
}

void EngineImpl::on_death(std::size_t index) {
    Worker& w = workers_[index];
    if (!w.proc) return;
    // Results the worker sent before it died are valid: take them first.
    if (!w.eof) read_some(w);
    if (!w.proc) return;
    w.proc->join();
    const int code = w.proc->exitcode().value_or(-SIGKILL);
    const pid_t pid = w.pid;
    const bool planned = w.exiting && code == 0;
    const std::uint64_t culprit = w.slot ? w.slot->task.load(std::memory_order_acquire) : 0;
    const std::size_t element =
        w.slot ? static_cast<std::size_t>(w.slot->element.load(std::memory_order_relaxed)) : 0;
    const bool was_ready = w.ready;
    std::deque<std::uint64_t> held = std::move(w.held);
    w.proc->close();
    w = Worker{};

    const std::string how = "worker process " + std::to_string(pid) + " " + describe_exit(code);
    if (!was_ready && !planned) {
        // It died before the initializer finished: the initializer (or the start) kills workers,
        // and replacing them would only loop.
        for (auto id : held) retry_.push_back(id);
        break_engine(std::make_exception_ptr(BrokenProcessPool(
            owner_ + ": " + how + " while running the initializer; the pool cannot run tasks")));
        return;
    }
    for (auto id : held) {
        auto it = tasks_.find(id);
        if (it == tasks_.end()) continue;
        Task& t = it->second;
        if (id != culprit) {
            retry_.push_back(id);  // never started, or its result was lost: run it elsewhere
            continue;
        }
        ++t.deaths;
        if (!t.history.empty()) t.history += "; ";
        t.history += "attempt " + std::to_string(t.deaths) + ": " + how;
        if (t.deaths <= opts_.retries) {
            retry_.push_front(id);
            continue;
        }
        std::string msg = owner_ + ": the " + how + " while running this task";
        if (opts_.retries > 0)
            msg = owner_ + ": task quarantined after it killed " + std::to_string(t.deaths) +
                  " worker processes (" + t.history + ")";
        auto err = std::make_exception_ptr(BrokenProcessPool(msg));
        auto entry = t.entry;
        const auto tag = t.tag;
        finish_task(id);
        try {
            entry->src->lost(tag, element, err);
        } catch (...) {
        }
    }
    bool stopping;
    {
        std::lock_guard lk(m_);
        stopping = terminating_ || broken_;
    }
    if (!stopping) start_worker(index);
    publish_pids();
}

void EngineImpl::break_engine(std::exception_ptr err) {
    // Only recorded here: the loop stops the workers and fails every task at its next turn
    // (this may run deep inside the handling of one worker's frames).
    std::lock_guard lk(m_);
    if (!broken_) broken_ = std::move(err);
}

void EngineImpl::abandon_all(const std::exception_ptr& err) noexcept {
    // Every task of a source fails through its abandon: the engine forgets them all.
    tasks_.clear();
    retry_.clear();
    auto entries = std::move(entries_);
    entries_.clear();
    std::deque<std::shared_ptr<TaskSource>> incoming;
    {
        std::lock_guard lk(m_);
        incoming.swap(incoming_);
        stopped_ = true;
    }
    for (auto& e : entries) {
        try {
            e->src->abandon(err);
        } catch (...) {
        }
    }
    for (auto& s : incoming) {
        try {
            s->abandon(err);
        } catch (...) {
        }
    }
}

void EngineImpl::kill_all() noexcept {
    for (auto& w : workers_) {
        if (!w.proc) continue;
        try {
            w.proc->kill();
        } catch (...) {
        }
    }
    for (auto& w : workers_) {
        if (!w.proc) continue;
        try {
            w.proc->join();
            w.proc->close();
        } catch (...) {
        }
        w = Worker{};
    }
}

void EngineImpl::graceful_stop() {
    for (auto& w : workers_) {
        if (!w.proc || w.exiting) continue;
        w.exiting = true;
        wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::exit), 0, 0};
        put(w.out, h);
        send_some(w);
    }
    // Workers exit as soon as they read the frame; one whose socket is full (it cannot be: it
    // holds no task) or that hangs in user code is killed after a grace period.
    const Deadline grace(std::chrono::seconds(5));
    for (auto& w : workers_) {
        if (!w.proc) continue;
        while (w.out_pos < w.out.size() && !w.eof && !grace.expired()) {
            pollfd p{w.sock.get(), POLLOUT, 0};
            static_cast<void>(sys::poll_until(&p, 1, Deadline(std::chrono::milliseconds(10))));
            send_some(w);
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

void EngineImpl::drop_finished_entries() {
    std::erase_if(entries_, [](const std::shared_ptr<Entry>& e) {
        return e->inflight == 0 && e->src->exhausted();
    });
}

// --- Engine forwards ----------------------------------------------------------------------------

Engine::Engine(EngineOptions options) : impl_(std::make_unique<EngineImpl>(std::move(options))) {}
Engine::~Engine() = default;
void Engine::submit(std::shared_ptr<TaskSource> src) { impl_->submit(std::move(src)); }
void Engine::wake() noexcept { impl_->wake(); }
EngineLink Engine::link() const { return EngineLink(impl_->wake_channel()); }
void Engine::close() noexcept { impl_->close(); }
void Engine::join() { impl_->join(); }
void Engine::terminate() noexcept { impl_->terminate(); }
int Engine::processes() const noexcept { return impl_->processes(); }
std::vector<pid_t> Engine::worker_pids() const { return impl_->worker_pids(); }
std::exception_ptr Engine::broken() const { return impl_->broken(); }

}  // namespace mp::detail
