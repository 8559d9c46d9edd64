// The sole owner of a heap object that a public class keeps behind a pointer (a pimpl, an
// engine): what std::unique_ptr does for such members, at a fraction of its compile cost.
//
// Each distinct std::unique_ptr<T> a header names makes every including program instantiate
// unique_ptr, __uniq_ptr_impl, __uniq_ptr_data and a std::tuple of pointer and deleter with
// their constraint checks (about 4-5 ms of g++ time each, measured); Owned<T> is one small class.
// The object is deleted where Owned<T>'s destructor (or move assignment, or reset) is
// instantiated: in the owning class's out-of-line destructor, where T is complete, as with
// std::unique_ptr. With a deleter type D, D{}(p) deletes instead (for a T whose deletion is
// compiled in the library only).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace mp::detail {

/// Owns one T (or nothing); movable, not copyable; deletes it when destroyed or reset.
template <class T, class D = void>
class Owned {
public:
    /// Owns nothing.
    constexpr Owned() noexcept = default;
    /// Owns nothing.
    constexpr Owned(std::nullptr_t) noexcept {}  // NOLINT: implicit, as unique_ptr's
    /// Takes ownership of p (may be null).
    explicit Owned(T* p) noexcept : p_(p) {}
    /// Takes o's object; o owns nothing after.
    Owned(Owned&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    /// Deletes the object owned, then takes o's.
    Owned& operator=(Owned&& o) noexcept {
        reset(std::exchange(o.p_, nullptr));
        return *this;
    }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    /// Deletes the object owned.
    ~Owned() { destroy(p_); }

    /// Deletes the object owned and takes p instead.
    void reset(T* p = nullptr) noexcept { destroy(std::exchange(p_, p)); }
    /// The object (null when none); ownership stays here.
    [[nodiscard]] T* get() const noexcept { return p_; }
    /// The object (there must be one).
    T* operator->() const noexcept { return p_; }
    /// The object (there must be one).
    T& operator*() const noexcept { return *p_; }
    /// True when an object is owned.
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    static void destroy(T* p) noexcept {
        if constexpr (std::is_void_v<D>) {
            static_assert(sizeof(T) > 0,
                          "mp::detail::Owned: T must be complete where it is deleted");
            delete p;
        } else {
            if (p) D{}(p);
        }
    }
    T* p_ = nullptr;
};

/// A new T(args...), owned.
template <class T, class... Args>
Owned<T> make_owned(Args&&... args) {
    return Owned<T>(new T(std::forward<Args>(args)...));
}

}  // namespace mp::detail
