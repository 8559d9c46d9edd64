// The one owner of a file descriptor: move-only, closes on destruction, never retries close.
#pragma once

#include <utility>

namespace mp::detail {

/// Move-only owner of a file descriptor (-1 when empty).
class UniqueFd {
public:
    UniqueFd() noexcept = default;
    /// Takes ownership of fd.
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    /// The descriptor, still owned.
    [[nodiscard]] int get() const noexcept { return fd_; }
    /// True when a descriptor is owned.
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Gives up ownership without closing.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the owned descriptor (EINTR is not retried: Linux has closed it already).
    void reset(int fd = -1) noexcept;
    /// A close-on-exec duplicate (throws std::system_error).
    [[nodiscard]] UniqueFd dup() const { return dup_of(fd_); }
    /// A close-on-exec duplicate of a descriptor that stays its owner's (std::system_error).
    [[nodiscard]] static UniqueFd dup_of(int fd);

private:
    int fd_ = -1;
};

}  // namespace mp::detail
