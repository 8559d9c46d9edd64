// The result state shared by mp::AsyncResult and mp::Future: completion, hooks, callbacks,
// waiters.
#include "multiproc/detail/result_state.hpp"

#include <string>
#include <utility>

#include "demangle.hpp"

namespace mp::detail {

namespace {

void report_done_callback_error() noexcept {
    // Python logs "exception calling callback for <Future ...>" and carries on.
    report_current_exception("multiproc: exception calling a done callback of an mp::Future: ");
}

}  // namespace

ResultStateBase::~ResultStateBase() = default;

bool ResultStateBase::set_running_or_notify_cancel() noexcept {
    std::lock_guard lk(m_);
    if (status_.load(std::memory_order_relaxed) != Status::pending) return false;
    status_.store(Status::running, std::memory_order_release);
    return true;
}

bool ResultStateBase::set_running(KillRoute route) noexcept {
    std::lock_guard lk(m_);
    if (status_.load(std::memory_order_relaxed) != Status::pending) return false;
    route_ = std::move(route);
    has_route_ = true;
    status_.store(Status::running, std::memory_order_release);
    return true;
}

bool ResultStateBase::cancel(bool force) {
    std::optional<KillRoute> route;
    {
        std::lock_guard lk(m_);
        const Status s = status_.load(std::memory_order_relaxed);
        if (s == Status::cancelled) return true;
        if (claimed_) return false;
        if (s == Status::running && force && has_route_) {
            route.emplace(std::move(route_));
            route_ = KillRoute{EngineLink(nullptr), {}, 0};
            has_route_ = false;
        } else if (s != Status::pending) return false;
        claimed_ = true;
    }
    // Cancelled at once: the worker is killed afterwards, and whatever the task still
    // delivers (a result that raced the kill, the CancelledError of the kill) finds the
    // state done and is dropped.
    publish(Status::cancelled, nullptr);
    if (route)
        if (auto src = route->src.lock()) route->engine.kill_task(std::move(src), route->tag, this);
    return true;
}

bool ResultStateBase::claim() {
    std::lock_guard lk(m_);
    if (claimed_) return false;
    claimed_ = true;
    return true;
}

void ResultStateBase::set_error(std::exception_ptr e) {
    if (!claim()) return;
    publish(Status::finished, std::move(e));
}

std::exception_ptr ResultStateBase::error() const noexcept {
    if (!done()) return nullptr;
    return error_;  // written before the status was published, never after
}

void ResultStateBase::publish(Status final, std::exception_ptr error) {
    // Only the thread that claimed the state gets here; readers see error_ after the status.
    error_ = std::move(error);
    if (final == Status::finished) run_hooks();
    std::vector<std::function<void(ResultStateBase&)>> callbacks;
    {
        std::lock_guard lk(m_);
        status_.store(final, std::memory_order_release);
        // Waiters are told under the lock, so that remove_waiter (also under it) guarantees a
        // waiter that returned is never called again, even while it is being destroyed.
        for (auto* w : waiters_) w->on_done(this);
        waiters_.clear();
        callbacks.swap(callbacks_);
    }
    notifier_.notify_all();
    for (auto& cb : callbacks) {
        try {
            cb(*this);
        } catch (...) {
            report_done_callback_error();
        }
    }
}

void ResultStateBase::run_hooks() noexcept {
    // Python's AsyncResult logs an exception escaping a callback and still sets the result.
    if (error_) {
        if (!on_error_) return;
        try {
            on_error_(error_);
        } catch (...) {
            report_current_exception("multiproc: an exception escaped a Pool error_callback: ");
        }
    } else if (on_value_) {
        try {
            on_value_(*this);
        } catch (...) {
            report_current_exception("multiproc: an exception escaped a Pool callback: ");
        }
    }
}

bool ResultStateBase::wait(Deadline d) {
    return notifier_.wait([this] { return done(); }, d);
}

void ResultStateBase::add_done_callback(std::function<void(ResultStateBase&)> cb) {
    {
        std::lock_guard lk(m_);
        if (!done()) {
            callbacks_.push_back(std::move(cb));
            return;
        }
    }
    try {
        cb(*this);
    } catch (...) {
        report_done_callback_error();
    }
}

bool ResultStateBase::add_waiter(ResultWaiter* w) {
    std::lock_guard lk(m_);
    if (done()) return false;
    waiters_.push_back(w);
    return true;
}

void ResultStateBase::remove_waiter(ResultWaiter* w) noexcept {
    std::lock_guard lk(m_);
    std::erase(waiters_, w);
}


void ResultWaiter::on_done(ResultStateBase* s) {
    // Notified under the lock: the waiter sees `s` only after this unlock, so it cannot return
    // and destroy the notifier (as_completed's waiter lives in the caller's iterator, and a state
    // it has taken is not removed under the state's lock) while notify_all still touches it.
    std::lock_guard lk(m_);
    done_.push_back(s);
    notifier_.notify_all();
}

std::vector<ResultStateBase*> ResultWaiter::take() {
    std::lock_guard lk(m_);
    return std::exchange(done_, {});
}

bool ResultWaiter::wait(Deadline d) {
    return notifier_.wait(
        [this] {
        std::lock_guard lk(m_);
        return !done_.empty();
        },
        d);
}

}  // namespace mp::detail
