// Python's queue.Queue as a manager server serves it to Python clients (an AutoProxy's put, get,
// qsize, ...), and mp::PyQueue, the C++ side of the same queue in the server's process.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <stdexcept>

#include "manager_py.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/manager_python.hpp"

namespace mp::detail {

namespace {

using py::object;

// queue.Empty (a C class of _queue) and queue.Full, as Python's queue pickles them.
[[noreturn]] void raise_empty() {
    throw PyRaise(object(std::make_shared<py::instance>(
                      py::instance{{"_queue", "Empty"}, std::make_shared<py::tuple>(), nullptr})),
                  "multiproc: the PyQueue is empty");
}
[[noreturn]] void raise_full() {
    throw PyRaise(object(std::make_shared<py::instance>(
                      py::instance{{"queue", "Full"}, std::make_shared<py::tuple>(), nullptr})),
                  "multiproc: the PyQueue is full");
}
// queue.ShutDown (Python 3.13): a put, or a get from an empty queue, after shutdown().
[[noreturn]] void raise_shut_down() {
    throw PyRaise(object(std::make_shared<py::instance>(
                      py::instance{{"queue", "ShutDown"}, std::make_shared<py::tuple>(), nullptr})),
                  "multiproc: the PyQueue was shut down (a Python client called shutdown())");
}

// A wait's limit from (block, timeout) as Python's queue takes them: -1 forever.
std::int64_t wait_ns(const object& block, const object& timeout) {
    if (!block.is_none() && block.kind() == py::kind::boolean && !block.as_bool()) return 0;
    if (timeout.is_none()) return -1;
    const double s = timeout.as_float();
    if (s < 0) py_raise("ValueError", {"'timeout' must be a non-negative number"});
    return static_cast<std::int64_t>(s * 1e9);
}

}  // namespace

class PyQueueState final : public PyServed {
public:
    explicit PyQueueState(std::size_t maxsize) : maxsize_(maxsize) {}

    [[nodiscard]] std::string_view type_name() const override { return "Queue"; }
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {"empty",      "full",  "get",
                                                        "get_nowait", "join",  "put",
                                                        "put_nowait", "qsize", "shutdown",
                                                        "task_done"};
        return kExposed;
    }
    [[nodiscard]] object value() const override {
        throw PyNoMethod("a Queue has no value to send (#GETVALUE)");
    }

    object call(std::string_view m, const PyArgs& a, const PyCallContext& ctx) override {
        if (m == "put" || m == "put_nowait") {
            const bool now = m == "put_nowait";
            a.at_most(now ? 1 : 3);
            put(a.at(0, "item"),
                now ? 0 : wait_ns(a.get(1, "block", true), a.get(2, "timeout", object())),
                &ctx.abandoned);
            return object();
        }
        if (m == "get" || m == "get_nowait") {
            const bool now = m == "get_nowait";
            a.at_most(now ? 0 : 2);
            return get(now ? 0 : wait_ns(a.get(0, "block", true), a.get(1, "timeout", object())),
                       &ctx.abandoned);
        }
        a.at_most(m == "shutdown" ? 1 : 0);
        std::unique_lock lk(m_);
        if (m == "shutdown") {
            shut_ = true;
            if (py_truth(a.get(0, "immediate", false))) {  // drop the items, their tasks done
                unfinished_ -= std::min(unfinished_, items_.size());
                items_.clear();
                done_.notify_all();
            }
            not_empty_.notify_all();
            not_full_.notify_all();
            return object();
        }
        if (m == "qsize") return object(static_cast<std::int64_t>(items_.size()));
        if (m == "empty") return object(items_.empty());
        if (m == "full") return object(maxsize_ > 0 && items_.size() >= maxsize_);
        if (m == "task_done") {
            if (unfinished_ == 0) py_raise("ValueError", {"task_done() called too many times"});
            if (--unfinished_ == 0) done_.notify_all();
            return object();
        }
        if (m == "join") {
            wait(lk, done_, -1, &ctx.abandoned, [&] { return unfinished_ == 0; });
            return object();
        }
        throw PyNoMethod("Queue has no method '" + std::string(m) + "'");
    }

    // Waits up to ns (-1: forever) for pred, in slices so that an abandoned call ends.
    template <class P>
    bool wait(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, std::int64_t ns,
              const std::function<bool()>* abandoned, P pred) {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::nanoseconds(ns < 0 ? 0 : ns);
        while (!pred()) {
            if (ns >= 0 && clock::now() >= deadline) return false;
            auto slice = clock::now() + std::chrono::milliseconds(100);
            if (ns >= 0 && deadline < slice) slice = deadline;
            cv.wait_until(lk, slice);
            if (!pred() && abandoned && *abandoned && (*abandoned)())
                throw EOFError("multiproc: the manager's Python client is gone");
        }
        return true;
    }

    void put(object v, std::int64_t ns, const std::function<bool()>* abandoned) {
        std::unique_lock lk(m_);
        if (shut_) raise_shut_down();
        if (!wait(lk, not_full_, ns, abandoned,
                  [&] { return shut_ || maxsize_ == 0 || items_.size() < maxsize_; }))
            raise_full();
        if (shut_) raise_shut_down();
        items_.push_back(std::move(v));
        ++unfinished_;
        not_empty_.notify_one();
    }

    object get(std::int64_t ns, const std::function<bool()>* abandoned) {
        std::unique_lock lk(m_);
        if (shut_ && items_.empty()) raise_shut_down();
        if (!wait(lk, not_empty_, ns, abandoned, [&] { return shut_ || !items_.empty(); }))
            raise_empty();
        if (items_.empty()) raise_shut_down();
        object v = std::move(items_.front());
        items_.pop_front();
        not_full_.notify_one();
        return v;
    }

    std::size_t qsize() {
        std::lock_guard lk(m_);
        return items_.size();
    }

private:
    std::mutex m_;
    std::condition_variable not_empty_, not_full_, done_;
    std::deque<object> items_;
    std::size_t maxsize_;
    std::size_t unfinished_ = 0;
    bool shut_ = false;  // Python 3.13's shutdown()
};

std::shared_ptr<PyServed> make_py_queue(const PyArgs& args, bool) {
    args.at_most(1);
    const object n = args.get(0, "maxsize", object(0));
    return std::make_shared<PyQueueState>(n.as_int() > 0 ? static_cast<std::size_t>(n.as_int())
                                                         : 0);
}

}  // namespace mp::detail

namespace mp {

namespace {
detail::PyQueueState& state(const std::shared_ptr<detail::PyServed>& s) {
    return static_cast<detail::PyQueueState&>(*s);
}
std::int64_t ns_of(Timeout t) { return t.is_forever() ? -1 : t.duration().count(); }
}  // namespace

PyQueue::PyQueue(std::size_t maxsize) : PyShared(std::make_shared<detail::PyQueueState>(maxsize)) {}

void PyQueue::put_object(py::object value, Timeout timeout) {
    try {
        state(s_).put(std::move(value), ns_of(timeout), nullptr);
    } catch (const detail::PyRaise& e) {
        throw Full(e.what());
    }
}

py::object PyQueue::get_object(Timeout timeout) {
    try {
        return state(s_).get(ns_of(timeout), nullptr);
    } catch (const detail::PyRaise& e) {
        throw Empty(e.what());
    }
}

std::size_t PyQueue::qsize() const { return state(s_).qsize(); }

void PyQueue::task_done() {
    try {
        state(s_).call("task_done", detail::PyArgs("task_done", {}, nullptr), {});
    } catch (const detail::PyRaise&) {
        throw std::invalid_argument("multiproc: ValueError: task_done() called too many times");
    }
}

void PyQueue::join() { state(s_).call("join", detail::PyArgs("join", {}, nullptr), {}); }

}  // namespace mp
