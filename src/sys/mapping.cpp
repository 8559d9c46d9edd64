#include "sys/mapping.hpp"

#include <sys/mman.h>

#include "multiproc/errors.hpp"

namespace mp::sys {

Mapping Mapping::map_fd(int fd, std::size_t size, int prot) {
    void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_os_error("mmap");
    Mapping m;
    m.data_ = static_cast<std::byte*>(p);
    m.size_ = size;
    return m;
}

Mapping Mapping::map_shared(int fd, std::size_t size) {
    return map_fd(fd, size, PROT_READ | PROT_WRITE);
}

Mapping Mapping::map_read_only(int fd, std::size_t size) { return map_fd(fd, size, PROT_READ); }

void Mapping::reset() noexcept {
    if (data_) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

void* map_unforked_pages(std::size_t bytes) noexcept {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    static_cast<void>(::madvise(p, bytes, MADV_DONTFORK));  // only a cost if refused
    return p;
}

void unmap_pages(void* p, std::size_t bytes) noexcept { ::munmap(p, bytes); }

}  // namespace mp::sys
