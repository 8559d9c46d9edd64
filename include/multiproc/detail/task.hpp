// Packaging work for the task engine (detail/engine.hpp): the typed thunks that workers run.
//
// Two kinds of task, both ordinary shipped calls (callable.hpp's magic + thunk identity +
// target + arguments), so a worker runs either with run_shipped_task (task_protocol.hpp):
//
//   package_pool_task(f, args...)  one call, f(args...). A std::vector of a trivially copyable
//       type of at least bulk_threshold bytes travels through a memfd instead of the socket
//       (joblib's memmapping): the parent writes it once, the worker maps it, and when f takes
//       a std::span<const T> there it reads the mapping in place, with no copy at all.
//       Result: what run_shipped_task writes; decode_task_result<R>.
//
//   package_chunk<Star>(f, first, n)  n work items of map/starmap as ONE call: the thunk
//       decodes the items (one memcpy block when they are trivially copyable), applies f to
//       each (std::apply for starmap), and encodes every outcome individually:
//
//         u8 status ok | u64 n | R[n] raw | u64 nerr | nerr x (u64 index, exception)  R raw
//         u8 status ok | u64 n | n x (u8 ok | R, or u8 error | exception)            otherwise
//         u8 status ok | u64 n | u64 nerr | nerr x (u64 index, exception)             R void
//
//       decode_chunk_result hands each element to callbacks (into a destination array with one
//       memcpy when R is trivially copyable). While it runs, the worker publishes the index of
//       the item in progress in shared memory, so a crash names the exact item.
//
// Everything here is a compile-time error, with callable.hpp's reasons, when f or an argument
// cannot ship.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/reduction.hpp"

namespace mp::detail {

/// Arguments at least this large (a vector of a trivially copyable type) travel by memfd.
inline constexpr std::size_t bulk_threshold = std::size_t{1} << 20;

/// Anonymous shared memory holding one large argument: created (and written) by the sender,
/// mapped read-only by the worker. Move-only. The mapping's owner (src/sys's) is held
/// type-erased, since the OS layer is private to the library.
class BulkBuffer {
public:
    BulkBuffer() noexcept = default;
    /// A memfd holding a copy of [data, data + bytes).
    static BulkBuffer create(const void* data, std::size_t bytes);
    /// Maps a received memfd of `bytes` bytes (DecodeError when it is shorter).
    static BulkBuffer map(UniqueFd fd, std::size_t bytes);
    BulkBuffer(BulkBuffer&&) noexcept = default;
    BulkBuffer& operator=(BulkBuffer&&) noexcept = default;
    BulkBuffer(const BulkBuffer&) = delete;
    BulkBuffer& operator=(const BulkBuffer&) = delete;
    ~BulkBuffer() = default;

    /// The mapped bytes (null before map()).
    [[nodiscard]] const void* data() const noexcept { return map_.get(); }
    /// The memfd.
    [[nodiscard]] UniqueFd& fd() noexcept { return fd_; }

private:
    UniqueFd fd_;
    std::shared_ptr<const std::byte> map_;  // points into the mapping it owns
};

/// The steady clock (CLOCK_MONOTONIC, the same in every process of the machine), in ns.
std::int64_t monotonic_ns() noexcept;

/// The shared page where a worker publishes what it runs: the supervisor reads it to learn
/// what a crash interrupted and whether a task overran its time limit.
struct WorkerProgress {
    std::atomic<std::uint64_t> task;         ///< id of the task running (0: none)
    std::atomic<std::uint64_t> element;      ///< the chunk item in progress
    std::atomic<std::int64_t> started_ns;    ///< monotonic_ns() when it (or the item) started
    std::atomic<std::uint32_t> stamp_items;  ///< supervisor: time every item (limits in force)
    std::atomic<std::uint32_t> retire;       ///< worker: its memory is over its bound

    /// Publishes that item i of the running chunk starts (its start time too when the
    /// supervisor watches time limits: one relaxed load otherwise).
    void enter_item(std::uint64_t i) noexcept {
        if (stamp_items.load(std::memory_order_relaxed))
            started_ns.store(monotonic_ns(), std::memory_order_relaxed);
        element.store(i, std::memory_order_release);
    }
};

/// In a worker: its progress page (null elsewhere).
WorkerProgress* worker_progress_slot() noexcept;

template <class T>
inline constexpr bool is_bulk_vector_v = false;
template <class T, class A>
inline constexpr bool is_bulk_vector_v<std::vector<T, A>> =
    kind_of<std::vector<T, A>>() == Kind::contiguous_raw;

/// The worker's form of a large-capable vector argument: decoded inline or mapped.
template <class T>
struct BulkArg {
    std::vector<T> vec;
    BulkBuffer shm;
    std::size_t n = 0;
    bool mapped = false;

    std::span<const T> span() const noexcept {
        return mapped ? std::span<const T>(static_cast<const T*>(shm.data()), n)
                      : std::span<const T>(vec);
    }
    std::vector<T>& vector() {
        if (mapped) {
            const T* p = static_cast<const T*>(shm.data());
            vec.assign(p, p + n);
            mapped = false;
        }
        return vec;
    }
};

/// How an argument of type A travels in a pool task.
template <class A>
struct wire_arg {
    using type = stored_arg_t<A>;
};
template <class A>
requires is_bulk_vector_v<stored_arg_t<A>>
struct wire_arg<A> {
    using type = BulkArg<typename stored_arg_t<A>::value_type>;
};
template <class A>
using wire_arg_t = typename wire_arg<A>::type;

/// A bulk argument's hand-over (callable.hpp's arg_wire): decoded inline or mapped, given to f
/// as a span over the mapping (zero copy) when f accepts one, else as the vector (copied out of
/// the mapping when it was mapped).
template <class T>
struct arg_wire<BulkArg<T>> {
    static constexpr bool has_span_form = true;
    static BulkArg<T> decode(Decoder& in) {
        BulkArg<T> w;
        std::uint8_t mode = 0;
        in.read_bytes(&mode, 1);
        if (mode == 0) {
            w.vec = decode_value<std::vector<T>>(in);
        } else if (mode == 1) {
            w.n = static_cast<std::size_t>(in.read_size());
            if (w.n > (std::size_t{1} << 62) / sizeof(T))
                throw DecodeError("multiproc: corrupt task: a shared argument's size is absurd");
            w.shm = BulkBuffer::map(in.take_fd(), w.n * sizeof(T));
            w.mapped = true;
        } else {
            throw DecodeError("multiproc: corrupt task: unknown argument mode");
        }
        return w;
    }
    static std::span<const T> span_form(BulkArg<T>& w) noexcept { return w.span(); }
    static std::vector<T>&& rvalue_form(BulkArg<T>& w) { return std::move(w.vector()); }
    static std::vector<T>& lvalue_form(BulkArg<T>& w) { return w.vector(); }
};

/// Builds an OwnedCall from an encoder: borrowed descriptors are duplicated, those in `own`
/// (memfds made here, as (number, owner) pairs) are moved.
OwnedCall finish_owned_call(Encoder& e, std::vector<UniqueFd>& own);

/// Packages f(args...) as one engine task; unshippable f or arguments are compile-time errors.
template <class F, class... Args>
OwnedCall package_pool_task(const F& f, const Args&... args) {
    using T = call_traits<F, Args...>;
    if constexpr (!T::task_ok) {
        // callable.hpp's static_asserts state the reason.
        return OwnedCall::adopt(package_task(f, args...));
    } else {
        using Fn = std::decay_t<F>;
        if constexpr (std::is_pointer_v<Fn>) {
            const Fn fp = f;
            if (fp == nullptr)
                throw UsageError("multiproc: a task's target is a null function pointer");
        }
        Encoder e;
        begin_call<&thunk<Fn, TaskResult<typename T::result>, wire_arg_t<Args>...>>(e, f);
        std::vector<UniqueFd> own;
        auto one = [&](const auto& a) {
            using A = std::remove_cvref_t<decltype(a)>;
            if constexpr (is_bulk_vector_v<stored_arg_t<A>>) {
                using E = typename stored_arg_t<A>::value_type;
                const std::size_t bytes = a.size() * sizeof(E);
                if (bytes >= bulk_threshold) {
                    const std::uint8_t mode = 1;
                    e.write_bytes(&mode, 1);
                    e.write_size(a.size());
                    BulkBuffer b = BulkBuffer::create(a.data(), bytes);
                    e.add_fd(b.fd().get());
                    own.push_back(std::move(b.fd()));
                } else {
                    const std::uint8_t mode = 0;
                    e.write_bytes(&mode, 1);
                    e(a);
                }
            } else {
                encode_arg(e, a);
            }
        };
        (one(args), ...);
        return finish_owned_call(e, own);
    }
}

// --- chunks of map / starmap -----------------------------------------------------------------

/// The failed items of a chunk whose result is raw or void (package_chunk's error list): the
/// worker adds them while the items run and writes the list after the values; the parent reads
/// it back. Out of line (src/task_chunk_failures.cpp), so that a map does not instantiate it.
class ChunkFailures {
public:
    /// Item i (of the chunk) failed with e.
    void add(std::size_t i, std::exception_ptr e);
    /// Appends the list: u64 nerr | nerr x (u64 index, exception).
    void write(Encoder& out) const;
    /// Reads the list of a chunk of n items and finishes `in` (DecodeError for an index out of
    /// range); with by_item, failed(i) answers for every i < n.
    void read(Decoder& in, std::size_t n, bool by_item);
    /// After read(in, n, true): whether item i failed.
    [[nodiscard]] bool failed(std::size_t i) const { return failed_[i] != 0; }
    /// Hands every failure to on_error(i, exception_ptr), in the order they were added.
    template <class OnError>
    void each(OnError& on_error) {
        for (auto& [i, e] : list_) on_error(i, std::move(e));
    }

private:
    std::vector<std::pair<std::size_t, std::exception_ptr>> list_;
    std::vector<unsigned char> failed_;  // not vector<bool>: every program would instantiate it
};

template <bool Star, class F, class A>
struct chunk_traits;
template <class F, class A>
struct chunk_traits<false, F, A> {
    using T = call_traits<F, A>;
};
template <class F, class... E>
struct chunk_traits<true, F, std::tuple<E...>> {
    using T = call_traits<F, E...>;
};

template <class R>
inline constexpr bool raw_result_v = !std::is_void_v<R> && kind_of<R>() == Kind::raw;

template <bool Star, class F, class A>
decltype(auto) apply_item(F& f, A& a) {
    if constexpr (Star) {
        return std::apply(
            [&](auto&... xs) -> decltype(auto) {
                if constexpr (std::is_invocable_v<F&, decltype(std::move(xs))...>)
                    return detail::invoke(f, std::move(xs)...);
                else return detail::invoke(f, xs...);
            },
            a);
    } else {
        if constexpr (std::is_invocable_v<F&, A&&>) return detail::invoke(f, std::move(a));
        else return detail::invoke(f, a);
    }
}

/// The worker half of package_chunk: A is the stored item type (a tuple for starmap).
template <class F, class R, class A, bool Star>
void chunk_thunk(Decoder& in, Encoder* out) {
    F fn = decode_target<F>(in);
    constexpr bool raw_in = !Star && kind_of<A>() == Kind::raw;
    // Raw items are one block of the input; decoded items are charged to the decoder's budget
    // before `items` reserves them (a count is input, not a size to allocate).
    const std::size_t n =
        raw_in ? in.read_count(sizeof(A)) : in.read_count(min_encoded_size<A>(), sizeof(A));
    std::span<const std::byte> block;
    std::vector<A> items;
    if constexpr (raw_in) {
        if (n > in.remaining() / sizeof(A))
            throw DecodeError("multiproc: corrupt chunk: too short");
        block = in.take(n * sizeof(A));
    } else {
        items.reserve(n);
        for (std::size_t i = 0; i < n; ++i) items.push_back(decode_value<A>(in));
    }
    in.finish();
    if (!out) return;
    WorkerProgress* progress = worker_progress_slot();
    const auto ok = static_cast<std::uint8_t>(TaskStatus::ok);
    const auto bad = static_cast<std::uint8_t>(TaskStatus::error);
    out->write_bytes(&ok, 1);
    out->write_size(n);
    auto item = [&](std::size_t i) -> A {
        if constexpr (raw_in) {
            std::array<std::byte, sizeof(A)> raw;
            std::memcpy(raw.data(), block.data() + i * sizeof(A), sizeof(A));
            return std::bit_cast<A>(raw);
        } else {
            return std::move(items[i]);
        }
    };
    if constexpr (std::is_void_v<R> || raw_result_v<R>) {
        ChunkFailures failures;
        std::size_t base = 0;
        if constexpr (!std::is_void_v<R>) {
            base = out->bytes().size();
            out->bytes().resize(base + n * sizeof(R));
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (progress) progress->enter_item(i);
            try {
                A a = item(i);
                if constexpr (std::is_void_v<R>) {
                    static_cast<void>(apply_item<Star>(fn, a));
                } else {
                    const R r = apply_item<Star>(fn, a);
                    std::memcpy(out->bytes().data() + base + i * sizeof(R), &r, sizeof(R));
                }
            } catch (...) {
                failures.add(i, std::current_exception());
            }
        }
        failures.write(*out);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            if (progress) progress->enter_item(i);
            const std::size_t mark = out->bytes().size();
            try {
                A a = item(i);
                R r = apply_item<Star>(fn, a);
                out->write_bytes(&ok, 1);
                (*out)(r);
            } catch (...) {
                out->bytes().resize(mark);
                out->write_bytes(&bad, 1);
                (*out)(std::current_exception());
            }
        }
    }
}

/// The item type a chunk stores for an input of type V.
template <class V>
using chunk_item_t = stored_arg_t<V>;

/// The result type of f on one item (Star: the item is a tuple of arguments).
template <bool Star, class F, class V>
using chunk_result_t = typename chunk_traits<Star, F, chunk_item_t<V>>::T::result;

/// True when f can be mapped over items of type V (and its results shipped back).
template <bool Star, class F, class V>
inline constexpr bool chunk_ok_v = chunk_traits<Star, F, chunk_item_t<V>>::T::task_ok;

/// Encodes the header of a chunk call: thunk identity, target and item count.
template <bool Star, class F, class V>
void begin_chunk(Encoder& e, const F& f, std::size_t n) {
    using Fn = std::decay_t<F>;
    using A = chunk_item_t<V>;
    using R = chunk_result_t<Star, F, V>;
    begin_call<&chunk_thunk<Fn, R, A, Star>>(e, f);
    e.write_size(n);
}

/// Appends one item of a chunk (raw bytes for a trivially copyable item).
template <bool Star, class V>
void encode_chunk_item(Encoder& e, const V& v) {
    using A = chunk_item_t<V>;
    if constexpr (!Star && kind_of<A>() == Kind::raw && std::is_same_v<std::remove_cvref_t<V>, A>)
        e.write_bytes(std::addressof(v), sizeof(A));
    else if constexpr (!Star && kind_of<A>() == Kind::raw)
        encode_chunk_item<Star>(e, static_cast<A>(v));
    else encode_arg(e, static_cast<const A&>(v));
}

/// Appends a chunk's items: one block when they travel as their own bytes.
template <bool Star, class V>
void encode_chunk_items(Encoder& e, std::span<const V> items) {
    using A = chunk_item_t<V>;
    if constexpr (!Star && kind_of<A>() == Kind::raw && std::is_same_v<V, A>) {
        e.bytes().reserve(e.bytes().size() + items.size() * sizeof(V));
        e.write_bytes(items.data(), items.size() * sizeof(V));
    } else {
        for (const auto& v : items) encode_chunk_item<Star>(e, v);
    }
}

/// Checks at compile time that f can be mapped over V (callable.hpp's messages otherwise).
template <bool Star, class F, class V>
constexpr bool check_chunk() {
    using T = typename chunk_traits<Star, F, chunk_item_t<V>>::T;
    if constexpr (!T::task_ok) {
        if constexpr (Star) {
            []<class... E>(std::tuple<E...>*) {
                static_cast<void>(&package_task<F, E...>);
                }(static_cast<chunk_item_t<V>*>(nullptr));
        } else {
            static_cast<void>(&package_task<F, chunk_item_t<V>>);
        }
    }
    return T::task_ok;
}

/// Decodes a chunk result of n items: on_value(i, R&&) (or on_value(i) for void) per success,
/// on_error(i, exception_ptr) per failure. A failure of the whole chunk (it could not even be
/// decoded in the worker) calls on_error for every item. With `dest` non-null and R trivially
/// copyable, values are copied straight into dest[0, n) and on_value is not called.
template <class R, class OnValue, class OnError>
void decode_chunk_result(std::span<const std::byte> bytes, std::span<UniqueFd> fds, std::size_t n,
                         R* dest, OnValue&& on_value, OnError&& on_error) {
    Decoder d(bytes, fds);
    try {
        read_task_status(d);
    } catch (...) {
        auto ex = std::current_exception();
        for (std::size_t i = 0; i < n; ++i) on_error(i, ex);
        return;
    }
    if (d.read_size() != n) throw DecodeError("multiproc: corrupt chunk result: wrong item count");
    if constexpr (std::is_void_v<R> || raw_result_v<R>) {
        ChunkFailures failures;
        std::span<const std::byte> block;
        if constexpr (!std::is_void_v<R>) {
            block = d.take(n * sizeof(R));
            if (dest && n) std::memcpy(static_cast<void*>(dest), block.data(), n * sizeof(R));
        }
        const bool by_item = std::is_void_v<R> || !dest;
        failures.read(d, n, by_item);
        if (by_item) {
            for (std::size_t i = 0; i < n; ++i) {
                if (failures.failed(i)) continue;
                if constexpr (std::is_void_v<R>) {
                    on_value(i);
                } else {
                    std::array<std::byte, sizeof(R)> raw;
                    std::memcpy(raw.data(), block.data() + i * sizeof(R), sizeof(R));
                    on_value(i, std::bit_cast<R>(raw));
                }
            }
        }
        failures.each(on_error);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            std::uint8_t s = 0;
            d.read_bytes(&s, 1);
            if (s == static_cast<std::uint8_t>(TaskStatus::ok)) {
                on_value(i, decode_value<R>(d));
            } else if (s == static_cast<std::uint8_t>(TaskStatus::error)) {
                on_error(i, decode_exception(d));
            } else {
                throw DecodeError("multiproc: corrupt chunk result: unknown status byte");
            }
        }
        d.finish();
    }
}

}  // namespace mp::detail
