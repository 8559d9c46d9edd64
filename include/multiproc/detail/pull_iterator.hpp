// A single-pass input iterator over what an owner hands out one at a time (imap's results,
// as_completed's futures): the owner's pull() returns a pointer to the next element, or null at
// the end, and may block.
#pragma once

#include <cstddef>

#include "multiproc/detail/std_parts.hpp"

namespace mp::detail {

/// Input iterator whose ++ asks Owner::pull() (reachable by this class) for the next element.
template <class Owner, class T>
class PullIterator {
public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    PullIterator() = default;
    /// Starts at the owner's first element (pulls it).
    explicit PullIterator(Owner* owner) : owner_(owner), cur_(owner->pull()) {}
    T& operator*() const { return *cur_; }
    T* operator->() const { return cur_; }
    PullIterator& operator++() {
        cur_ = owner_->pull();
        return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const PullIterator& it, std::default_sentinel_t) noexcept {
        return !it.cur_;
    }

private:
    Owner* owner_ = nullptr;
    T* cur_ = nullptr;  // the owner's until the next pull
};

}  // namespace mp::detail
