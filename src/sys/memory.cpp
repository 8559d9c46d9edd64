#include "sys/memory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace mp::sys {

std::size_t resident_set_bytes() noexcept {
    int fd = -1;
    do {
        fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = -1;
    do {
        n = ::read(fd, buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    // "size resident shared text lib data dt", in pages.
    char* end = nullptr;
    static_cast<void>(std::strtoull(buf, &end, 10));
    const unsigned long long pages = std::strtoull(end, nullptr, 10);
    const long page = ::sysconf(_SC_PAGESIZE);
    return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page > 0 ? page : 4096);
}

}  // namespace mp::sys
