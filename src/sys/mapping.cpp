#include "sys/mapping.hpp"

#include <sys/mman.h>

#include "multiproc/errors.hpp"

namespace mp::sys {

Mapping Mapping::map_shared(int fd, std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_os_error("mmap");
    Mapping m;
    m.data_ = static_cast<std::byte*>(p);
    m.size_ = size;
    return m;
}

void Mapping::reset() noexcept {
    if (data_) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

}  // namespace mp::sys
