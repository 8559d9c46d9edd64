// Shared values and arrays (Python's multiprocessing.Value / Array / RawValue / RawArray).
//
// Across processes: the object lives in a shared arena (detail/arena.hpp). A handle is cheap
// to copy and every copy is the same memory; a handle passed to a Process (fork, spawn or
// forkserver), a Pool task, a Queue or a Pipe arrives as the same memory, not a copy.
//
// Value<T> and Array<T> come with a lock by default (a new RLock, as in Python), reached
// through get_lock(); `mp::lock = false` or RawValue/RawArray make them without one. value()
// and operator[] return references into shared memory and take no lock themselves (unlike
// Python's Value.value property, which locks around each single read or write): hold
// get_lock() around read-modify-write sequences such as `v.value() += 1`. get() and set()
// are the locked single reads and writes. The lock is robust: see synchronize.hpp (a process
// killed while holding it hands the next acquirer an mp::OwnerDied, holding the lock).
//
// T must be trivially copyable (the bytes are shared as they are); new memory is zero-filled
// and then given the initial value(s). Thread safety: as for the memory itself; handles may
// be copied and used from any thread.
#pragma once

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "multiproc/detail/arena.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/synchronize.hpp"

namespace mp {

namespace detail {

/// Whether a Value/Array gets a lock (`mp::lock = false`).
struct LockOption {
    bool enabled;
};

/// The type of mp::lock, Python's `lock=` keyword argument.
struct LockKeyword {
    /// `mp::lock = false` makes a Value/Array without a lock.
    constexpr LockOption operator=(bool enabled) const noexcept { return LockOption{enabled}; }
};

template <class T>
constexpr void check_shared_type() {
    static_assert(std::is_trivially_copyable_v<T>,
                  "multiproc: Value/Array/RawValue/RawArray need a trivially copyable element "
                  "type: it is shared between processes as raw bytes (no constructors, "
                  "destructors or pointers to process-local memory such as std::string)");
    static_assert(!std::is_pointer_v<T>,
                  "multiproc: a pointer in shared memory means nothing in another process");
    static_assert(alignof(T) <= 4096, "multiproc: shared types may be aligned to at most 4096");
}

}  // namespace detail

/// Python's `lock=` keyword: `mp::Value<int> v(0, mp::lock = false)`.
inline constexpr detail::LockKeyword lock{};

/// Python's RawValue: one T in shared memory, without a lock.
template <class T>
class RawValue {
    static_assert((detail::check_shared_type<T>(), true));

public:
    /// A zero-initialised T.
    RawValue() : RawValue(T{}) {}
    /// A T initialised to `initial`.
    explicit RawValue(const T& initial)
        : block_(detail::SharedBlock::allocate(sizeof(T), alignof(T))),
          p_(::new (block_.data()) T(initial)) {}

    /// The shared object itself (Python's .value); no locking.
    [[nodiscard]] T& value() const noexcept { return *p_; }

    /// Codec: the same memory in the receiving process.
    void save(Encoder& e) const { e(block_); }
    /// Codec.
    void load(Decoder& d) {
        detail::SharedBlock b;
        d(b);
        if (b.size() < sizeof(T))
            throw DecodeError("multiproc: corrupt message: RawValue of another type");
        block_ = std::move(b);
        p_ = std::launder(static_cast<T*>(block_.data()));
    }

private:
    detail::SharedBlock block_;
    T* p_ = nullptr;
};

/// Python's Value: one T in shared memory with a lock (a new RLock unless told otherwise; an
/// mp::Lock with `mp::Value<T, mp::Lock>`, or deduced: `mp::Value v(0, mp::Lock())`).
template <class T, class L = RLock>
class Value {
    static_assert(std::is_same_v<L, RLock> || std::is_same_v<L, Lock>,
                  "multiproc: a Value's lock is an mp::RLock (the default) or an mp::Lock");

public:
    /// A zero-initialised T with a new lock.
    Value() : Value(T{}) {}
    /// `initial`, with a new lock.
    explicit Value(const T& initial) : raw_(initial), lock_(L()) {}
    /// `initial`, with a new lock or (mp::lock = false) none.
    Value(const T& initial, detail::LockOption opt) : raw_(initial) {
        if (opt.enabled) lock_.emplace();
    }
    /// `initial`, guarded by an existing lock.
    Value(const T& initial, L lock) : raw_(initial), lock_(std::move(lock)) {}

    /// The shared object itself (Python's .value); takes no lock: hold get_lock() around
    /// read-modify-write sequences.
    [[nodiscard]] T& value() const noexcept { return raw_.value(); }
    /// A copy read under the lock (Python's `x = v.value`).
    [[nodiscard]] T get() const {
        if (!lock_) return value();
        std::scoped_lock lk(*lock_);
        return value();
    }
    /// Writes under the lock (Python's `v.value = x`).
    void set(const T& x) const {
        if (!lock_) {
            value() = x;
            return;
        }
        std::scoped_lock lk(*lock_);
        value() = x;
    }
    /// The lock (mp::UsageError if made with mp::lock = false).
    [[nodiscard]] L& get_lock() const {
        if (!lock_)
            throw UsageError("multiproc: this Value was made without a lock (mp::lock = false)");
        return *lock_;
    }
    /// The shared memory without its lock (Python's get_obj()): a RawValue/RawArray handle.
    [[nodiscard]] const RawValue<T>& get_obj() const noexcept { return raw_; }
    /// Acquires the lock (Python's v.acquire()).
    bool acquire(bool blocking = true) const { return get_lock().acquire(blocking); }
    /// Releases the lock (Python's v.release()).
    void release() const { get_lock().release(); }

    /// Codec: the same memory (and lock) in the receiving process.
    void save(Encoder& e) const { e(raw_, lock_); }
    /// Codec.
    void load(Decoder& d) { d(raw_, lock_); }

private:
    RawValue<T> raw_;
    mutable std::optional<L> lock_;
};

/// Python's RawArray: a fixed number of T in shared memory, without a lock.
template <class T>
class RawArray {
    static_assert((detail::check_shared_type<T>(), true));

public:
    using value_type = T;
    using iterator = T*;
    using const_iterator = T*;

    /// An empty array.
    RawArray() : RawArray(std::size_t{0}) {}
    /// n zero-filled elements (note: `RawArray<int>{5}` is one element 5, as for std::vector).
    explicit RawArray(std::size_t n)
        : block_(detail::SharedBlock::allocate(n * sizeof(T), alignof(T))), n_(n) {
        p_ = std::launder(static_cast<T*>(block_.data()));
    }
    /// The given elements.
    RawArray(std::initializer_list<T> init) : RawArray(init.size()) {
        std::memcpy(static_cast<void*>(p_), init.begin(), init.size() * sizeof(T));
    }
    /// The elements of a range.
    template <std::ranges::input_range R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, RawArray> &&
             std::is_convertible_v<std::ranges::range_reference_t<R>, T>) explicit RawArray(R&& r)
        : RawArray(from_range(std::forward<R>(r))) {}

    /// Element i (unchecked).
    [[nodiscard]] T& operator[](std::size_t i) const noexcept { return p_[i]; }
    /// Element i (std::out_of_range past the end, like Python's IndexError).
    [[nodiscard]] T& at(std::size_t i) const {
        if (i >= n_)
            throw std::out_of_range("multiproc: Array index " + std::to_string(i) +
                                    " out of range");
        return p_[i];
    }
    /// The number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return n_; }
    /// The first element's address.
    [[nodiscard]] T* data() const noexcept { return p_; }
    /// Iterators over the shared elements.
    [[nodiscard]] T* begin() const noexcept { return p_; }
    [[nodiscard]] T* end() const noexcept { return p_ + n_; }
    /// The elements as a span.
    [[nodiscard]] std::span<T> span() const noexcept { return {p_, n_}; }

    /// Codec: the same memory in the receiving process.
    void save(Encoder& e) const {
        e(block_);
        e.write_size(n_);
    }
    /// Codec.
    void load(Decoder& d) {
        detail::SharedBlock b;
        d(b);
        const std::size_t n = d.read_size();
        if (n > b.size() / (sizeof(T) ? sizeof(T) : 1))
            throw DecodeError("multiproc: corrupt message: RawArray longer than its block");
        block_ = std::move(b);
        n_ = n;
        p_ = std::launder(static_cast<T*>(block_.data()));
    }

private:
    template <class R>
    static RawArray from_range(R&& r) {
        if constexpr (std::ranges::sized_range<R>) {
            RawArray a(static_cast<std::size_t>(std::ranges::size(r)));
            std::size_t i = 0;
            for (auto&& x : r) a.p_[i++] = static_cast<T>(x);
            return a;
        } else {
            std::vector<T> tmp;
            for (auto&& x : r) tmp.push_back(static_cast<T>(x));
            RawArray a(tmp.size());
            if (!tmp.empty())
                std::memcpy(static_cast<void*>(a.p_), tmp.data(), tmp.size() * sizeof(T));
            return a;
        }
    }

    detail::SharedBlock block_;
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

/// Python's Array: a fixed number of T in shared memory with a lock (a new RLock by default; an
/// mp::Lock with `mp::Array<T, mp::Lock>`).
template <class T, class L = RLock>
class Array {
    static_assert(std::is_same_v<L, RLock> || std::is_same_v<L, Lock>,
                  "multiproc: a Array's lock is an mp::RLock (the default) or an mp::Lock");

public:
    using value_type = T;
    using iterator = T*;
    using const_iterator = T*;

    /// An empty array with a lock.
    Array() : Array(std::size_t{0}) {}
    /// n zero-filled elements, with a new lock (`Array<int>{5}` is one element 5).
    explicit Array(std::size_t n) : raw_(n), lock_(L()) {}
    /// n zero-filled elements, with a new lock or (mp::lock = false) none.
    Array(std::size_t n, detail::LockOption opt) : raw_(n) {
        if (opt.enabled) lock_.emplace();
    }
    /// n zero-filled elements guarded by an existing lock.
    Array(std::size_t n, L lock) : raw_(n), lock_(std::move(lock)) {}
    /// The given elements, with a new lock.
    Array(std::initializer_list<T> init) : raw_(init), lock_(L()) {}
    /// The given elements, with a new lock or none.
    Array(std::initializer_list<T> init, detail::LockOption opt) : raw_(init) {
        if (opt.enabled) lock_.emplace();
    }
    /// The elements of a range, with a new lock.
    template <std::ranges::input_range R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, Array> &&
             std::is_convertible_v<std::ranges::range_reference_t<R>, T>) explicit Array(R&& r)
        : raw_(std::forward<R>(r)), lock_(L()) {}
    /// The elements of a range, with a new lock or none.
    template <std::ranges::input_range R>
    requires(std::is_convertible_v<std::ranges::range_reference_t<R>, T>)
        Array(R&& r, detail::LockOption opt)
        : raw_(std::forward<R>(r)) {
        if (opt.enabled) lock_.emplace();
    }

    /// Element i (unchecked, no locking).
    [[nodiscard]] T& operator[](std::size_t i) const noexcept { return raw_[i]; }
    /// Element i (std::out_of_range past the end).
    [[nodiscard]] T& at(std::size_t i) const { return raw_.at(i); }
    /// The number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return raw_.size(); }
    /// The first element's address.
    [[nodiscard]] T* data() const noexcept { return raw_.data(); }
    /// Iterators over the shared elements (no locking).
    [[nodiscard]] T* begin() const noexcept { return raw_.begin(); }
    [[nodiscard]] T* end() const noexcept { return raw_.end(); }
    /// The elements as a span (no locking).
    [[nodiscard]] std::span<T> span() const noexcept { return raw_.span(); }
    /// The lock (mp::UsageError if made with mp::lock = false).
    [[nodiscard]] L& get_lock() const {
        if (!lock_)
            throw UsageError("multiproc: this Array was made without a lock (mp::lock = false)");
        return *lock_;
    }
    /// The shared memory without its lock (Python's get_obj()): a RawValue/RawArray handle.
    [[nodiscard]] const RawArray<T>& get_obj() const noexcept { return raw_; }
    /// Acquires the lock.
    bool acquire(bool blocking = true) const { return get_lock().acquire(blocking); }
    /// Releases the lock.
    void release() const { get_lock().release(); }

    /// Codec: the same memory (and lock) in the receiving process.
    void save(Encoder& e) const { e(raw_, lock_); }
    /// Codec.
    void load(Decoder& d) { d(raw_, lock_); }

private:
    RawArray<T> raw_;
    mutable std::optional<L> lock_;
};

}  // namespace mp
