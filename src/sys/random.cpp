#include "sys/random.hpp"

#include <sys/random.h>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

void random_bytes(void* buf, std::size_t n) {
    auto* p = static_cast<unsigned char*>(buf);
    while (n) {
        const ssize_t r = retry_eintr([&] { return ::getrandom(p, n, 0); });
        if (r < 0) throw_os_error("getrandom");
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

}  // namespace mp::sys
