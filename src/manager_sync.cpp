// The manager's locks, semaphores, conditions, events and barriers (Python's threading objects
// that SyncManager serves). A blocking call waits on the server thread of the caller's
// connection. An owner is a calling thread of a client process (ProxyCore::owner).
#include <list>
#include <stdexcept>

#include "manager_protocol.hpp"

namespace mp::detail {
namespace {

std::uint64_t read_owner(Decoder& a) {
    std::uint64_t owner;
    a(owner);
    return owner;
}

// Lock (any thread may release), RLock (owned, recursive) and Condition (an RLock with waiters).
class LockObject final : public ServerObject {
public:
    enum class Kind { lock, rlock, condition };
    explicit LockObject(Kind k) : kind_(k) {}

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::unique_lock lk(m_);
        const std::uint64_t me = read_owner(a);
        if (method == "acquire") {
            const auto [block, ns] = read_wait(a);
            a.finish();
            out(acquire(lk, me, block, ns));
        } else if (method == "release") {
            a.finish();
            release(me);
        } else if (kind_ == Kind::condition && method == "wait") {
            const auto [block, ns] = read_wait(a);
            a.finish();
            check_owner(me, "wait on");
            const std::uint64_t depth = count_;
            owner_ = 0;
            count_ = 0;
            changed_.notify_all();
            auto notified = std::make_shared<bool>(false);
            waiters_.push_back(notified);
            const bool ok = wait_until_true(changed_, lk, block, ns, [&] { return *notified; });
            if (!ok) waiters_.remove(notified);
            changed_.wait(lk, [&] { return count_ == 0; });
            owner_ = me;
            count_ = depth;
            out(ok);
        } else if (kind_ == Kind::condition && method == "notify") {
            std::int32_t n;
            a(n);
            a.finish();
            check_owner(me, "notify on");
            for (; n != 0 && !waiters_.empty(); --n) {
                *waiters_.front() = true;
                waiters_.pop_front();
            }
            changed_.notify_all();
        } else {
            unknown_method(kind_ == Kind::lock    ? "Lock"
                           : kind_ == Kind::rlock ? "RLock"
                                                  : "Condition",
                           method);
        }
    }

private:
    bool acquire(std::unique_lock<std::mutex>& lk, std::uint64_t me, bool block, std::int64_t ns) {
        if (kind_ != Kind::lock && owner_ == me) {
            ++count_;
            return true;
        }
        if (!wait_until_true(changed_, lk, block, ns, [&] { return count_ == 0; })) return false;
        owner_ = me;
        count_ = 1;
        return true;
    }
    void release(std::uint64_t me) {
        if (count_ == 0 || (kind_ != Kind::lock && owner_ != me))
            throw std::runtime_error(
                "multiproc: RuntimeError: release of a manager lock not held by the caller");
        if (--count_ == 0) {
            owner_ = 0;
            changed_.notify_all();
        }
    }
    void check_owner(std::uint64_t me, const char* what) const {
        if (count_ == 0 || owner_ != me)
            throw std::runtime_error(std::string("multiproc: RuntimeError: cannot ") + what +
                                     " a manager condition whose lock the caller does not hold");
    }

    std::mutex m_;
    std::condition_variable changed_;
    Kind kind_;
    std::uint64_t owner_ = 0;
    std::uint64_t count_ = 0;
    std::list<std::shared_ptr<bool>> waiters_;
};

class SemaphoreObject final : public ServerObject {
public:
    SemaphoreObject(std::int32_t value, bool bounded)
        : value_(value), bound_(bounded ? value : -1) {
        if (value < 0)
            throw std::invalid_argument(
                "multiproc: ValueError: a semaphore's initial value must be >= 0");
    }

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::unique_lock lk(m_);
        if (method == "get_value") {
            a.finish();
            out(value_);
            return;
        }
        static_cast<void>(read_owner(a));
        if (method == "acquire") {
            const auto [block, ns] = read_wait(a);
            a.finish();
            const bool ok = wait_until_true(changed_, lk, block, ns, [&] { return value_ > 0; });
            if (ok) --value_;
            out(ok);
        } else if (method == "release") {
            a.finish();
            if (bound_ >= 0 && value_ >= bound_)
                throw std::invalid_argument(
                    "multiproc: ValueError: a bounded semaphore released too many times");
            ++value_;
            changed_.notify_one();
        } else {
            unknown_method(bound_ >= 0 ? "BoundedSemaphore" : "Semaphore", method);
        }
    }

private:
    std::mutex m_;
    std::condition_variable changed_;
    std::int32_t value_;
    std::int32_t bound_;
};

class EventObject final : public ServerObject {
public:
    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::unique_lock lk(m_);
        if (method == "wait") {
            static_cast<void>(read_owner(a));
            const auto [block, ns] = read_wait(a);
            a.finish();
            out(wait_until_true(changed_, lk, block, ns, [&] { return flag_; }));
            return;
        }
        a.finish();
        if (method == "set") {
            flag_ = true;
            changed_.notify_all();
        } else if (method == "clear") {
            flag_ = false;
        } else if (method == "is_set") {
            out(flag_);
        } else {
            unknown_method("Event", method);
        }
    }

private:
    std::mutex m_;
    std::condition_variable changed_;
    bool flag_ = false;
};

[[noreturn]] void broken_barrier() {
    // The proxy turns this message's prefix back into mp::BrokenBarrierError.
    throw ProcessError("multiproc: BrokenBarrierError: the manager barrier is broken");
}

class BarrierObject final : public ServerObject {
public:
    explicit BarrierObject(std::int32_t parties) : parties_(static_cast<std::uint64_t>(parties)) {
        if (parties <= 0)
            throw std::invalid_argument(
                "multiproc: ValueError: a barrier needs at least one party");
    }

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::unique_lock lk(m_);
        if (method == "wait") {
            static_cast<void>(read_owner(a));
            const auto [block, ns] = read_wait(a);
            a.finish();
            if (broken_) broken_barrier();
            const std::uint64_t round = round_;
            const std::uint64_t index = waiting_++;
            if (waiting_ == parties_) {
                waiting_ = 0;
                ++round_;
                changed_.notify_all();
            } else if (!wait_until_true(changed_, lk, block, ns,
                                        [&] { return round_ != round || broken_; })) {
                broken_ = true;  // a timeout breaks the barrier, as Python's
                changed_.notify_all();
                broken_barrier();
            } else if (round_ == round || round == reset_round_) {
                broken_barrier();
            }
            out(index);
            return;
        }
        a.finish();
        if (method == "reset") {
            if (waiting_ > 0) {
                reset_round_ = round_++;
                waiting_ = 0;
            }
            broken_ = false;
            changed_.notify_all();
        } else if (method == "abort") {
            broken_ = true;
            waiting_ = 0;
            changed_.notify_all();
        } else if (method == "parties") {
            out(parties_);
        } else if (method == "n_waiting") {
            out(waiting_);
        } else if (method == "broken") {
            out(broken_);
        } else {
            unknown_method("Barrier", method);
        }
    }

private:
    std::mutex m_;
    std::condition_variable changed_;
    std::uint64_t parties_;
    std::uint64_t waiting_ = 0;
    std::uint64_t round_ = 1;
    std::uint64_t reset_round_ = 0;
    bool broken_ = false;
};

}  // namespace

std::unique_ptr<ServerObject> make_lock(Decoder& args) {
    args.finish();
    return std::make_unique<LockObject>(LockObject::Kind::lock);
}
std::unique_ptr<ServerObject> make_rlock(Decoder& args) {
    args.finish();
    return std::make_unique<LockObject>(LockObject::Kind::rlock);
}
std::unique_ptr<ServerObject> make_condition(Decoder& args) {
    args.finish();
    return std::make_unique<LockObject>(LockObject::Kind::condition);
}
std::unique_ptr<ServerObject> make_semaphore(Decoder& args) {
    return std::make_unique<SemaphoreObject>(read_int(args), false);
}
std::unique_ptr<ServerObject> make_bounded_semaphore(Decoder& args) {
    return std::make_unique<SemaphoreObject>(read_int(args), true);
}
std::unique_ptr<ServerObject> make_event(Decoder& args) {
    args.finish();
    return std::make_unique<EventObject>();
}
std::unique_ptr<ServerObject> make_barrier(Decoder& args) {
    return std::make_unique<BarrierObject>(read_int(args));
}

}  // namespace mp::detail
