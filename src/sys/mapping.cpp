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

Mapping Mapping::map_read_only(int fd, std::size_t size) {
    return map_fd(fd, size, PROT_READ);
}

void Mapping::reset() noexcept {
    if (data_) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

}  // namespace mp::sys
