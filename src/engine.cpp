// The task engine's supervisor: one thread that runs the event loop over every worker's link
// (never blocking on one peer) and sentinel, and the engine's front (submit, close, join,
// terminate). Its parts: the scheduler (scheduler.hpp: batches, retries, results), the
// transport (transport.hpp: frames to and from a worker), the workers' lifecycle
// (worker_lifecycle.hpp: start, watch, replace). Protocol: engine_protocol.hpp; interface and
// guarantees: multiproc/detail/engine.hpp.
#include "multiproc/detail/engine.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "engine_stats.hpp"
#include "scheduler.hpp"
#include "sys/eventfd.hpp"
#include "sys/io.hpp"
#include "sys/sigmask.hpp"
#include "worker_lifecycle.hpp"
#include "worker_trace.hpp"

namespace mp::detail {

// --- the wake-up channel ------------------------------------------------------------------------

// The engine's loop sleeps in poll on `fd`; wake() writes it only when the loop said it sleeps,
// and `pending` covers a wake between the loop's last look and its poll.
struct WakeChannel {
    UniqueFd fd = sys::make_eventfd();
    std::atomic<bool> sleeping{false};
    std::atomic<bool> pending{false};

    // Kill requests (Future::cancel(mp::force)), taken by the loop's next turn. Weak: a source
    // holds this channel, and a request the loop never takes must not keep its source alive.
    struct KillRequest {
        std::weak_ptr<TaskSource> src;
        std::uint64_t tag;
        const void* token;
    };
    std::mutex kills_m;
    std::vector<KillRequest> kills;
    std::atomic<bool> has_kills{false};

    void wake() noexcept {
        pending.store(true, std::memory_order_seq_cst);
        if (sleeping.exchange(false, std::memory_order_seq_cst)) sys::signal_eventfd(fd.get());
    }
};

EngineLink::EngineLink(std::shared_ptr<WakeChannel> channel) noexcept
    : channel_(std::move(channel)) {}

void EngineLink::wake() const noexcept { channel_->wake(); }

void EngineLink::kill_task(std::shared_ptr<TaskSource> src, std::uint64_t tag,
                           const void* token) const {
    {
        std::lock_guard lk(channel_->kills_m);
        channel_->kills.push_back({src, tag, token});
        channel_->has_kills.store(true, std::memory_order_release);
    }
    channel_->wake();
}

// --- the supervisor -----------------------------------------------------------------------------

class EngineImpl {
public:
    explicit EngineImpl(EngineOptions opts);
    ~EngineImpl() { terminate(false); }

    void submit(std::shared_ptr<TaskSource> src);
    void wake() noexcept { wake_->wake(); }
    [[nodiscard]] std::shared_ptr<WakeChannel> wake_channel() const { return wake_; }
    void close() noexcept;
    void join();
    void terminate(bool gently) noexcept;
    int processes() const noexcept { return nproc_; }
    std::vector<pid_t> worker_pids() const {
        std::lock_guard lk(m_);
        return pids_;
    }
    std::exception_ptr broken() const {
        std::lock_guard lk(m_);
        return broken_;
    }
    PoolStats stats();

private:
    class Holding;
    void run() noexcept;
    void loop();
    bool turn();
    bool dispatch_here();
    void prepare_poll();
    Deadline watch();
    void take_kills();
    void handle_events();
    void read_frames(Worker& w, bool until_empty);
    void handle_frame(Worker& w, wire::Frame& f);
    void on_death(std::size_t index);
    void break_engine(std::exception_ptr err);
    void abandon_all(const std::exception_ptr& err) noexcept;
    std::exception_ptr terminated_error() const;
    void publish_pids();

    EngineOptions opts_;
    int nproc_ = 1;
    int threads_per_worker_ = 1;

    mutable std::mutex m_;
    std::deque<std::shared_ptr<TaskSource>> incoming_;
    bool closing_ = false;
    bool terminating_ = false;
    bool gently_ = false;   // terminate with SIGTERM first
    bool stopped_ = false;  // the loop has ended: submissions are abandoned at once
    std::exception_ptr broken_;
    std::vector<pid_t> pids_;

    // Shared with every source (EngineLink), so that a source outliving the engine wakes an
    // eventfd nobody polls instead of a freed engine.
    std::shared_ptr<WakeChannel> wake_ = std::make_shared<WakeChannel>();
    std::atomic<bool> finished_{false};
    Notifier done_;
    std::thread thread_;

    // The loop's state, under loop_m_: held by the loop thread except while it sleeps in poll,
    // and by a submitting thread that dispatches its task itself (dispatch_here).
    std::mutex loop_m_;
    std::vector<Worker> workers_;
    Scheduler scheduler_;
    std::size_t next_worker_name_ = 1;
    std::vector<pollfd> pfds_;
    std::vector<std::pair<std::size_t, bool>> polled_;  // per pfds_ entry: (worker, sentinel)
    std::size_t doomed_ = 0;                            // workers being killed (SIGTERM sent)
    std::vector<Scheduler::Overrun> over_;
};

EngineImpl::EngineImpl(EngineOptions opts)
    : opts_(with_host(std::move(opts))), nproc_(worker_count(opts_)),
      threads_per_worker_(std::max(1, process_cpu_count() / nproc_)), scheduler_(opts_, nproc_) {
    trace_engine_started();
    workers_.resize(static_cast<std::size_t>(nproc_));
    try {
        for (std::size_t i = 0; i < workers_.size(); ++i)
            start_worker(workers_[i], opts_, threads_per_worker_, next_worker_name_++, i);
    } catch (...) {
        kill_workers(workers_);
        throw;
    }
    publish_pids();
    scheduler_.stats().pool_started(
        pids_, (opts_.context ? opts_.context->get_start_method() : *get_start_method()).c_str());
    // The supervisor blocks every signal, so that a process-directed SIGINT reaches a thread
    // that may be blocked in a Pool call (and interrupts it) rather than this one.
    sys::AllSignalsBlocked blocked;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (...) {
        kill_workers(workers_);
        throw;
    }
}

void EngineImpl::publish_pids() {
    std::vector<pid_t> p;
    for (auto& w : workers_)
        if (w.proc) p.push_back(w.pid);
    std::lock_guard lk(m_);
    pids_ = std::move(p);
}

std::exception_ptr EngineImpl::terminated_error() const {
    return broken_ ? broken_
                   : std::make_exception_ptr(BrokenProcessPool(
                         opts_.owner + ": the pool has been terminated; the task cannot run"));
}

// loop_m_ held by this thread, which is marked as holding it: source callbacks run under it,
// and a submission from one of them (a callback, an input iterator) must not take it again.
class EngineImpl::Holding {
public:
    explicit Holding(EngineImpl& e) : lk_(e.loop_m_), prev_(std::exchange(t_holding, &e)) {}
    Holding(EngineImpl& e, std::try_to_lock_t)
        : lk_(e.loop_m_, std::try_to_lock), prev_(t_holding) {
        if (lk_.owns_lock()) t_holding = &e;
    }
    Holding(const Holding&) = delete;
    Holding& operator=(const Holding&) = delete;
    ~Holding() { t_holding = prev_; }
    [[nodiscard]] bool owns() const noexcept { return lk_.owns_lock(); }
    static bool holds(const EngineImpl& e) noexcept { return t_holding == &e; }

private:
    static thread_local const EngineImpl* t_holding;
    std::unique_lock<std::mutex> lk_;
    const EngineImpl* prev_;
};

thread_local const EngineImpl* EngineImpl::Holding::t_holding = nullptr;

void EngineImpl::submit(std::shared_ptr<TaskSource> src) {
    std::exception_ptr dead;
    {
        std::lock_guard lk(m_);
        if (stopped_ || terminating_) dead = terminated_error();
        else incoming_.push_back(std::move(src));
    }
    if (dead) {
        src->abandon(dead);
        return;
    }
    // The submitting thread sends the task itself when the loop is asleep in poll: one thread
    // hop (and two system calls) fewer between a call and its worker. The loop's poll already
    // watches every worker's link, so the result wakes it as usual.
    if (!Holding::holds(*this)) {
        try {
            Holding h(*this, std::try_to_lock);
            if (h.owns() && dispatch_here()) return;
        } catch (...) {
            break_engine(std::current_exception());  // as in the loop: the loop fails every task
        }
    }
    wake();
}

// Under loop_m_, on a submitting thread: takes the new sources and sends what can go. False when
// the loop must take a turn itself (stopping, or output a worker did not accept at once).
bool EngineImpl::dispatch_here() {
    {
        std::lock_guard lk(m_);
        if (closing_ || terminating_ || broken_) return false;
        for (auto& s : incoming_) scheduler_.add(std::move(s));
        incoming_.clear();
    }
    scheduler_.fill(workers_);
    bool all_sent = true;
    for (auto& w : workers_) {
        if (!w.connected() || !w.link->out().pending()) continue;
        w.link->send_some();
        all_sent = all_sent && !w.link->out().pending();
    }
    // A task with a time limit needs the loop to look again: it may sleep with no deadline.
    return all_sent && !scheduler_.watching();
}

void EngineImpl::close() noexcept {
    {
        std::lock_guard lk(m_);
        if (!closing_)
            log_pool_event(opts_.owner, "closing (workers exit when the tasks are done)");
        closing_ = true;
    }
    wake();
}

void EngineImpl::join() {
    done_.wait([this] { return finished_.load(std::memory_order_acquire); }, Deadline::never());
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void EngineImpl::terminate(bool gently) noexcept {
    {
        std::lock_guard lk(m_);
        if (!terminating_ && !stopped_)
            log_pool_event(opts_.owner, "terminating (workers are killed)");
        if (!terminating_) gently_ = gently;
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
        Holding h(*this);
        kill_workers(workers_);
        abandon_all(broken());
    }
    // Sources submitted while we were stopping.
    std::deque<std::shared_ptr<TaskSource>> late;
    std::exception_ptr err;
    {
        std::lock_guard lk(m_);
        stopped_ = true;
        late.swap(incoming_);
        err = terminated_error();
    }
    for (auto& s : late) s->abandon(err);
    publish_pids();
    finished_.store(true, std::memory_order_release);
    done_.notify_all();
}

void EngineImpl::loop() {
    for (;;) {
        Deadline until = Deadline::never();
        {
            Holding h(*this);
            if (!turn()) return;
            prepare_poll();
            if (scheduler_.watching() || doomed_) until = watch();
        }
        wake_->sleeping.store(true, std::memory_order_seq_cst);
        const bool skip = wake_->pending.exchange(false, std::memory_order_seq_cst);
        int r = 0;
        if (!skip) r = sys::poll_until(pfds_.data(), pfds_.size(), until);
        wake_->sleeping.store(false, std::memory_order_seq_cst);
        if (r <= 0) continue;
        Holding h(*this);
        handle_events();
    }
}

// One turn of the loop: takes new sources, stops when asked to or broken, sends what can go.
// False when the loop is over.
bool EngineImpl::turn() {
    bool closing, terminating, gently;
    {
        std::lock_guard lk(m_);
        for (auto& s : incoming_) scheduler_.add(std::move(s));
        incoming_.clear();
        closing = closing_;
        terminating = terminating_;
        gently = gently_;
    }
    if (terminating) {
        kill_workers(workers_, gently);
        abandon_all(std::make_exception_ptr(BrokenProcessPool(
            opts_.owner + ": the pool was terminated before this task completed")));
        return false;
    }
    if (auto err = broken()) {
        kill_workers(workers_);
        abandon_all(err);
        return false;
    }
    if (wake_->has_kills.load(std::memory_order_acquire)) take_kills();
    scheduler_.fill(workers_);
    for (auto& w : workers_)
        if (w.connected() && w.link->out().pending()) w.link->send_some();
    scheduler_.drop_finished();
    if (closing && scheduler_.idle()) {
        stop_workers(workers_);
        return false;
    }
    return true;
}

// What the loop sleeps on: the wake channel, every worker's link and sentinel.
void EngineImpl::prepare_poll() {
    pfds_.clear();
    polled_.clear();
    pfds_.push_back({wake_->fd.get(), POLLIN, 0});
    polled_.emplace_back(workers_.size(), false);
    add_poll_entries(workers_, pfds_, polled_);
}

// Time limits: workers past their task's limit are killed (SIGTERM, then SIGKILL after a grace);
// returns when to look again.
Deadline EngineImpl::watch() {
    over_.clear();
    Deadline next = scheduler_.check_limits(workers_, over_);
    for (const auto& o : over_)
        if (doom_worker(workers_[o.worker], o.why, o.task, o.element)) ++doomed_;
    auto earliest = [](Deadline a, Deadline b) {
        if (a.is_forever()) return b;
        if (b.is_forever()) return a;
        return *a.at() < *b.at() ? a : b;
    };
    if (doomed_)
        for (auto& w : workers_) next = earliest(next, escalate(w));
    return next;
}

// Future::cancel(mp::force): the worker holding the task is killed as an overdue one is; for a
// map's every task (EngineLink::every_task), each worker running one.
void EngineImpl::take_kills() {
    std::vector<WakeChannel::KillRequest> kills;
    {
        std::lock_guard lk(wake_->kills_m);
        kills.swap(wake_->kills);
        wake_->has_kills.store(false, std::memory_order_relaxed);
    }
    over_.clear();
    for (const auto& k : kills) {
        const auto src = k.src.lock();
        if (!src) continue;  // done with every task
        if (k.tag == EngineLink::every_task) scheduler_.kill_source(src.get(), workers_, over_);
        else if (auto hit = scheduler_.find_to_kill(src.get(), k.tag, k.token, workers_))
            over_.push_back(*hit);
    }
    for (const auto& o : over_)
        if (doom_worker(workers_[o.worker], RestartReason::cancelled, o.task, o.element)) ++doomed_;
}

// What poll found: wake-ups, frames, room to send, deaths.
void EngineImpl::handle_events() {
    std::vector<std::size_t> dead;
    for (std::size_t k = 0; k < pfds_.size(); ++k) {
        if (!pfds_[k].revents) continue;
        const auto [i, sentinel] = polled_[k];
        if (i == workers_.size()) {
            sys::drain_eventfd(wake_->fd.get());
            wake_->pending.store(false);
            continue;
        }
        auto& w = workers_[i];
        if (sentinel) {
            dead.push_back(i);
            continue;
        }
        if (pfds_[k].revents & (POLLIN | POLLHUP | POLLERR)) read_frames(w, false);
        if (!w.link->closed() && (pfds_[k].revents & POLLOUT)) w.link->send_some();
    }
    for (std::size_t i : dead) on_death(i);
}

// Takes the frames that arrived. A read that did not fill the buffer most likely took all there
// was: the loop's next poll (level-triggered) reports anything left, so no read is spent on
// learning that nothing is there, unless `until_empty` (a dead worker: no poll will follow).
void EngineImpl::read_frames(Worker& w, bool until_empty) {
    using Received = wire::Transport::Received;
    wire::Frame f;
    for (;;) {
        const Received got = w.link->receive_some();
        while (w.link->in().next(f, opts_.owner.c_str())) handle_frame(w, f);
        if (got == Received::nothing || (got == Received::some && !until_empty)) return;
    }
}

void EngineImpl::handle_frame(Worker& w, wire::Frame& f) {
    switch (f.kind()) {
        case wire::Kind::ready: w.ready = true; return;
        case wire::Kind::init_failed: {
            Decoder d(f.payload);
            break_engine(std::make_exception_ptr(BrokenProcessPool(
                opts_.owner + ": " + describe_init_failure(w.pid, decode_exception(d)) +
                "; the pool cannot run tasks")));
            return;
        }
        case wire::Kind::results:
            scheduler_.on_results(w, f);
            if (w.slot && w.slot->retire.load(std::memory_order_relaxed))
                retire_worker(w, RestartReason::max_memory);
            else if (opts_.max_tasks_per_child && w.tasks_sent >= opts_.max_tasks_per_child &&
                     w.held.empty())
                retire_worker(w);
            return;
        case wire::Kind::retire:  // a hosted worker over its memory bound (its rank says so)
            if (!w.host) break;
            retire_worker(w, RestartReason::max_memory);
            return;
        default: break;
    }
    throw DecodeError(opts_.owner + ": unexpected frame from a worker");
}

void EngineImpl::on_death(std::size_t index) {
    Worker& w = workers_[index];
    if (!w.running()) return;
    // Results the worker sent before it died are valid: take them first, even when a send to it
    // already failed (closed()): what it wrote before exiting is still there to read.
    read_frames(w, true);
    WorkerDeath death = reap_worker(w);
    if (death.doomed_task && !death.host_killed) --doomed_;
    if (!death.was_ready && !death.planned && !death.doomed_task) {
        // It died before the initializer finished: the initializer (or the start) kills workers,
        // and replacing them would only loop.
        scheduler_.requeue(death.held);
        break_engine(std::make_exception_ptr(
            BrokenProcessPool(opts_.owner + ": " + death.how +
                              " while running the initializer; the pool cannot run tasks")));
        return;
    }
    scheduler_.on_death(death);
    bool stopping;
    {
        std::lock_guard lk(m_);
        stopping = terminating_ || broken_;
    }
    if (!stopping) {
        start_worker(w, opts_, threads_per_worker_, next_worker_name_++, index);
        scheduler_.stats().worker_replaced(index, death.reason, death.how, w.pid);
    }
    publish_pids();
}

// Under the loop lock, so that the numbers agree (a task is done or in flight, not both).
PoolStats EngineImpl::stats() {
    PoolStats s;
    auto take = [&] {
        scheduler_.snapshot(s, workers_);
        for (std::size_t i = 0; i < workers_.size() && i < s.workers.size(); ++i)
            s.workers[i].pid = workers_[i].proc ? workers_[i].pid : 0;
    };
    if (Holding::holds(*this)) {
        take();
    } else {
        Holding h(*this);
        take();
    }
    std::lock_guard lk(m_);
    for (const auto& src : incoming_)
        if (auto rem = src->remaining()) s.queued_items += *rem;
    return s;
}

void EngineImpl::break_engine(std::exception_ptr err) {
    // Only recorded here: the loop stops the workers and fails every task at its next turn
    // (this may run deep inside the handling of one worker's frames).
    std::lock_guard lk(m_);
    if (!broken_) broken_ = std::move(err);
}

void EngineImpl::abandon_all(const std::exception_ptr& err) noexcept {
    std::deque<std::shared_ptr<TaskSource>> incoming;
    {
        std::lock_guard lk(m_);
        incoming.swap(incoming_);
        stopped_ = true;
    }
    scheduler_.abandon_all(err, std::move(incoming));
}

// --- Engine forwards ----------------------------------------------------------------------------

Engine::Engine(EngineOptions options) : impl_(make_owned<EngineImpl>(std::move(options))) {}
Engine::~Engine() = default;
void Engine::submit(std::shared_ptr<TaskSource> src) { impl_->submit(std::move(src)); }
void Engine::wake() noexcept { impl_->wake(); }
EngineLink Engine::link() const { return EngineLink(impl_->wake_channel()); }
void Engine::close() noexcept { impl_->close(); }
void Engine::join() { impl_->join(); }
void Engine::terminate() noexcept { impl_->terminate(false); }
void Engine::terminate(bool gently) noexcept { impl_->terminate(gently); }
int Engine::processes() const noexcept { return impl_->processes(); }
std::vector<pid_t> Engine::worker_pids() const { return impl_->worker_pids(); }
std::exception_ptr Engine::broken() const { return impl_->broken(); }
PoolStats Engine::stats() const { return impl_->stats(); }

}  // namespace mp::detail
