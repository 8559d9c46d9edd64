#include "sys/memfd.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/syscall.hpp"

namespace mp::sys {

detail::UniqueFd make_memfd(const char* name, std::size_t size) {
    detail::UniqueFd fd(check(::memfd_create(name, MFD_CLOEXEC), "memfd_create"));
    check_retry([&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); }, "ftruncate");
    return fd;
}

std::size_t file_size(int fd) {
    struct stat st {};
    check(::fstat(fd, &st), "fstat");
    return static_cast<std::size_t>(st.st_size);
}

}  // namespace mp::sys
