#include "sys/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "sys/syscall.hpp"

namespace mp::sys {

int shm_open_fd(const std::string& name, bool create) noexcept {
    const int fd =
        ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0),
                   create ? 0600 : 0);
    return fd < 0 ? -errno : fd;
}

int shm_unlink_name(const std::string& name) noexcept {
    return ::shm_unlink(("/" + name).c_str()) != 0 ? -errno : 0;
}

void resize_file(int fd, std::size_t size) {
    check_retry([&] { return ::ftruncate(fd, static_cast<off_t>(size)); }, "ftruncate");
}

}  // namespace mp::sys
