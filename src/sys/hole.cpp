#include "sys/hole.hpp"

#include <fcntl.h>

#include "sys/syscall.hpp"

namespace mp::sys {

void punch_hole(int fd, std::size_t offset, std::size_t len) {
    check_retry(
        [&] {
        return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(offset), static_cast<off_t>(len));
        },
        "fallocate(PUNCH_HOLE)");
}

}  // namespace mp::sys
