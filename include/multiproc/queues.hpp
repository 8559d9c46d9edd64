// Queues between processes (Python's multiprocessing.queues): Queue, SimpleQueue, JoinableQueue.
//
// Storage: the items live in shared memory (one memfd per queue, mapped by every process that
// holds a handle), not in a pipe fed by a background thread. Once put() has returned, the item
// is in the shared queue: it survives its producer's exit, or SIGKILL, right after. Nothing is
// named in the file system, so nothing is left in /dev/shm whatever happens to any process; the
// memory goes back to the kernel when the last process holding the queue has gone.
//
// Across processes: a queue is a handle; copies refer to the same queue (as Python references
// do). A forked child inherits the handles it was given; under spawn and forkserver a queue
// passed as a Process argument (or through a Pipe) arrives as the same queue, carried with its
// descriptor. The queue does not depend on the start method. Any number of producer and
// consumer processes, and threads within them, may use one queue at once.
//
// Items: T is any type the codec (reduction.hpp) encodes; items of very different sizes mix in
// one queue. Trivially copyable T, std::string and std::vector of trivially copyable elements
// are copied straight into the shared storage; other types are encoded first. Items that carry
// file descriptors (Connection, Lock, Value, Queue ...) cannot travel through a queue (there is
// no channel for the descriptors): put() throws mp::UsageError; pass those as Process arguments.
//
// Guarantees: FIFO per producer (items put by one thread come out in the order put); no item is
// delivered twice. maxsize <= 0 means unbounded: put() never waits for room, the storage grows
// (up to 64 GiB of items waiting in one queue; beyond that put() throws std::system_error with
// ENOMEM). Items larger than the internal chunks (16 KiB) get storage of their own, copied
// outside the queue's locks. A consumer killed inside get() leaves the queue consistent: the item
// it was reading stays at the head and the next get() returns it (unless the consumer had
// already finished reading it, in the last instructions before get() returns: then it is gone
// with the consumer, as in Python). A producer killed inside put() leaves the queue consistent:
// the item is either wholly in the queue or not at all (a small item's reserved place is
// skipped by the consumers once they find its producer dead, after about 10 ms). A process
// killed inside put()/get() may leave up to one internal chunk of storage unused until the
// queue is destroyed. Small items (encoded in at most 112 bytes) are decoded before the
// consumer takes them, so with several consumers one may decode an item another consumer then
// takes (its copy is dropped): a type's load() should have no side effects.
//
// Blocking: get() waits for an item, put() on a bounded queue waits for room; both spin briefly
// (a few tens of microseconds, adapting to how often spinning succeeds) and then sleep on a
// futex, so an idle queue burns no CPU. Timeouts are mp::Timeout (any chrono duration),
// measured against one CLOCK_MONOTONIC deadline; signals neither shorten nor lengthen them.
// Ctrl-C under an mp::SigintGuard makes a waiting get, put or join throw mp::KeyboardInterrupt
// before anything is taken or added (docs/signals.md).
// No system call and no lock on the fast path of small items (a lock-free ring of slots); a
// futex wake only when a waiter is asleep.
//
// Thread safety: all members may be called concurrently from any thread of any process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

namespace detail {

class QueueCore;  // this process's view of one shared queue (src/queue_core.hpp)

/// Writes exactly n bytes of an item's encoding to dst (shared memory).
using QueueFill = void (*)(const void* ctx, std::byte* dst, std::size_t n);
/// Decodes one item from n bytes at src into ctx.
using QueueRead = void (*)(void* ctx, const std::byte* src, std::size_t n);

/// The type-erased queue every typed queue is a thin layer over. A handle: copies share.
class QueueHandle {
public:
    /// An empty handle (only to be loaded into).
    QueueHandle() noexcept = default;
    /// A new queue; maxsize <= 0 means unbounded.
    explicit QueueHandle(std::int64_t maxsize);

    /// Appends an item of n bytes written by fill; false when no room came before the deadline.
    [[nodiscard]] bool put(std::size_t n, QueueFill fill, const void* ctx, Deadline deadline);
    /// Takes the oldest item and passes it to read; false when none came before the deadline.
    /// If read throws, the item is consumed and the exception propagates.
    [[nodiscard]] bool get(QueueRead read, void* ctx, Deadline deadline);
    /// Items in the queue now (approximate while others put and get).
    [[nodiscard]] std::size_t qsize() const;
    /// The bound given at construction (0: unbounded).
    [[nodiscard]] std::int64_t maxsize() const;
    /// Marks this process's handles closed: put and get throw mp::UsageError afterwards.
    void close() noexcept;
    /// True after close() in this process.
    [[nodiscard]] bool closed() const noexcept;
    /// One item taken earlier is done; mp::UsageError when more than were put.
    void task_done();
    /// Waits until every item put has been marked done.
    void join();
    /// True when two handles refer to the same queue object of this process.
    [[nodiscard]] bool same_as(const QueueHandle& o) const noexcept { return core_ == o.core_; }

    /// Codec: the queue's descriptor.
    void save(Encoder& e) const;
    /// Codec: maps the queue.
    void load(Decoder& d);

private:
    QueueCore& core() const;
    std::shared_ptr<QueueCore> core_;
};

/// The calling thread's scratch buffer for encoding items that are not copied raw.
std::vector<std::byte>& queue_scratch();

template <class T>
constexpr bool queue_direct() {
    constexpr Kind k = kind_of<T>();
    return k == Kind::raw || k == Kind::string || k == Kind::contiguous_raw;
}

/// Encodes item and appends it (Full: false).
template <class T>
bool queue_put(QueueHandle& h, const T& item, Deadline deadline) {
    constexpr Kind k = kind_of<T>();
    if constexpr (k == Kind::raw) {
        return h.put(
            sizeof(T), [](const void* c, std::byte* dst, std::size_t n) { std::memcpy(dst, c, n); },
            std::addressof(item), deadline);
    } else if constexpr (k == Kind::string || k == Kind::contiguous_raw) {
        // The codec's layout (u64 count, then the elements), written straight into the queue.
        const std::uint64_t count = item.size();
        return h.put(
            sizeof count + count * sizeof(typename T::value_type),
            [](const void* c, std::byte* dst, std::size_t n) {
            const T& v = *static_cast<const T*>(c);
            const std::uint64_t cnt = v.size();
            std::memcpy(dst, &cnt, sizeof cnt);
            if (n > sizeof cnt) std::memcpy(dst + sizeof cnt, v.data(), n - sizeof cnt);
            },
            std::addressof(item), deadline);
    } else {
        Encoder e;
        std::vector<std::byte>& scratch = queue_scratch();
        scratch.clear();
        e.bytes().swap(scratch);
        struct Restore {
            Encoder& e;
            std::vector<std::byte>& s;
            ~Restore() { e.bytes().swap(s); }
        } restore{e, scratch};
        e(item);
        if (!e.fds().empty())
            throw UsageError(
                "multiproc: a queue item cannot carry file descriptors (it holds a Connection, "
                "Lock, Value, Queue or another handle): pass such handles as Process arguments");
        const std::vector<std::byte>& b = e.bytes();
        return h.put(
            b.size(),
            [](const void* c, std::byte* dst, std::size_t n) {
            std::memcpy(dst, static_cast<const std::vector<std::byte>*>(c)->data(), n);
            },
            &b, deadline);
    }
}

/// Takes and decodes one item (Empty: std::nullopt).
template <class T>
std::optional<T> queue_get(QueueHandle& h, Deadline deadline) {
    std::optional<T> out;
    const bool got = h.get(
        [](void* c, const std::byte* src, std::size_t n) {
        static_cast<std::optional<T>*>(c)->emplace(loads<T>(std::span<const std::byte>(src, n)));
        },
        &out, deadline);
    if (!got) return std::nullopt;
    return out;
}

inline Deadline no_wait() { return Deadline(Timeout(std::chrono::nanoseconds(0))); }

}  // namespace detail

/// Python's multiprocessing.Queue: a FIFO between any number of processes and threads.
template <class T>
class Queue {
    static_assert(is_shippable_v<T>,
                  "multiproc: Queue<T> needs a T the codec can encode (see reduction.hpp)");

public:
    /// A new queue holding at most maxsize items (maxsize <= 0: unbounded, put never waits).
    explicit Queue(std::int64_t maxsize = 0) : h_(maxsize) {}

    /// Appends item, waiting without limit for room in a bounded queue. mp::UsageError after
    /// close() (or when item carries descriptors).
    void put(const T& item) { (void)detail::queue_put(h_, item, detail::Deadline::never()); }
    /// Appends item, waiting up to timeout for room; mp::Full when none came.
    void put(const T& item, Timeout timeout) {
        if (!detail::queue_put(h_, item, detail::Deadline(timeout)))
            throw Full("multiproc: Queue.put: the queue is full");
    }
    /// Python's put(item, block, timeout): block=false never waits (mp::Full at once).
    void put(const T& item, bool block, Timeout timeout = forever) {
        if (block) put(item, timeout);
        else put_nowait(item);
    }
    /// Appends item if there is room now, else mp::Full.
    void put_nowait(const T& item) {
        if (!detail::queue_put(h_, item, detail::no_wait()))
            throw Full("multiproc: Queue.put_nowait: the queue is full");
    }

    /// Removes and returns the oldest item, waiting without limit.
    T get() { return *detail::queue_get<T>(h_, detail::Deadline::never()); }
    /// Removes and returns the oldest item, waiting up to timeout; mp::Empty when none came.
    T get(Timeout timeout) {
        auto v = detail::queue_get<T>(h_, detail::Deadline(timeout));
        if (!v) throw Empty("multiproc: Queue.get: no item arrived before the timeout");
        return std::move(*v);
    }
    /// Python's get(block, timeout): block=false never waits (mp::Empty at once).
    T get(bool block, Timeout timeout = forever) { return block ? get(timeout) : get_nowait(); }
    /// Removes and returns the oldest item if there is one now, else mp::Empty.
    T get_nowait() {
        auto v = detail::queue_get<T>(h_, detail::no_wait());
        if (!v) throw Empty("multiproc: Queue.get_nowait: the queue is empty");
        return std::move(*v);
    }

    /// Items in the queue now (a snapshot: others may put and get meanwhile).
    [[nodiscard]] std::size_t qsize() const { return h_.qsize(); }
    /// True when the queue holds no item now (a snapshot).
    [[nodiscard]] bool empty() const { return h_.qsize() == 0; }
    /// True when a bounded queue holds maxsize items now (a snapshot); false if unbounded.
    [[nodiscard]] bool full() const {
        return h_.maxsize() > 0 && h_.qsize() >= static_cast<std::size_t>(h_.maxsize());
    }
    /// The bound given at construction (0 when unbounded).
    [[nodiscard]] std::int64_t maxsize() const { return h_.maxsize(); }
    /// No more use of the queue from this process (all its handles here): put and get throw
    /// mp::UsageError afterwards. Items already put stay in the queue for other processes.
    void close() noexcept { h_.close(); }
    /// True after close() on this queue in this process (on any of its handles here).
    [[nodiscard]] bool closed() const noexcept { return h_.closed(); }
    /// Python waits here for the feeder thread to flush; multiproc has no feeder thread (put
    /// writes the item to shared memory before returning), so there is nothing to wait for and
    /// this returns at once. mp::UsageError unless close() was called first, as in Python.
    void join_thread() const {
        if (!h_.closed()) throw UsageError("multiproc: Queue.join_thread() before close()");
    }
    /// Python's way to let a process exit without flushing its feeder thread (and possibly lose
    /// items); with no feeder thread, nothing is pending and nothing can be lost: a no-op.
    void cancel_join_thread() noexcept {}

    /// Codec.
    void save(Encoder& e) const { h_.save(e); }
    /// Codec.
    void load(Decoder& d) { h_.load(d); }

protected:
    detail::QueueHandle h_;
};

/// Python's multiprocessing.SimpleQueue: an unbounded queue with put, get, empty and close.
template <class T>
class SimpleQueue {
    static_assert(is_shippable_v<T>,
                  "multiproc: SimpleQueue<T> needs a T the codec can encode (see reduction.hpp)");

public:
    /// A new, unbounded queue.
    SimpleQueue() : h_(0) {}
    /// Appends item (never waits). mp::UsageError after close().
    void put(const T& item) { (void)detail::queue_put(h_, item, detail::Deadline::never()); }
    /// Removes and returns the oldest item, waiting without limit.
    T get() { return *detail::queue_get<T>(h_, detail::Deadline::never()); }
    /// True when the queue holds no item now (a snapshot).
    [[nodiscard]] bool empty() const { return h_.qsize() == 0; }
    /// No more use from this process: put and get throw mp::UsageError afterwards. Items
    /// already put stay in the queue for other processes.
    void close() noexcept { h_.close(); }
    /// True after close() on this queue in this process (on any of its handles here).
    [[nodiscard]] bool closed() const noexcept { return h_.closed(); }

    /// Codec.
    void save(Encoder& e) const { h_.save(e); }
    /// Codec.
    void load(Decoder& d) { h_.load(d); }

private:
    detail::QueueHandle h_;
};

/// Python's multiprocessing.JoinableQueue: a Queue that counts unfinished items; consumers
/// call task_done() once per item taken, and join() waits until every item put is done.
template <class T>
class JoinableQueue : public Queue<T> {
public:
    /// A new queue holding at most maxsize items (maxsize <= 0: unbounded).
    explicit JoinableQueue(std::int64_t maxsize = 0) : Queue<T>(maxsize) {}
    /// Marks one item taken from the queue as done. mp::UsageError when called more times than
    /// items were put (Python's ValueError).
    void task_done() { this->h_.task_done(); }
    /// Waits (without limit) until every item ever put has been marked done.
    void join() { this->h_.join(); }
};

}  // namespace mp
