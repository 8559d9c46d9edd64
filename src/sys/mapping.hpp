// The one owner of a memory mapping: move-only, unmaps on destruction.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

namespace mp::sys {

/// Move-only owner of an mmap(2) region (empty when data() == nullptr).
class Mapping {
public:
    Mapping() noexcept = default;
    /// Maps `size` bytes of fd at offset 0, read-write, MAP_SHARED (throws std::system_error).
    static Mapping map_shared(int fd, std::size_t size);
    /// Maps `size` bytes of fd at offset 0, read-only, MAP_SHARED (throws std::system_error).
    static Mapping map_read_only(int fd, std::size_t size);
    Mapping(Mapping&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    Mapping& operator=(Mapping&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { reset(); }

    /// Start of the region.
    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    /// Length of the region in bytes.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The region as bytes.
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
    /// True when a region is owned.
    explicit operator bool() const noexcept { return data_ != nullptr; }
    /// Unmaps the region (if any).
    void reset() noexcept;

private:
    static Mapping map_fd(int fd, std::size_t size, int prot);
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Anonymous private read-write pages that fork leaves out of the child (MADV_DONTFORK, when
/// the kernel grants it): bookkeeping a child never reads costs no copy-on-write fault on
/// either side. nullptr when the mapping fails.
[[nodiscard]] void* map_unforked_pages(std::size_t bytes) noexcept;
/// Unmaps pages of map_unforked_pages.
void unmap_pages(void* p, std::size_t bytes) noexcept;

}  // namespace mp::sys
