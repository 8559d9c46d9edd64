#include "sys/stream.hpp"

#include <sys/socket.h>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {

std::size_t recv_all(int sock, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        // MSG_WAITALL lets the kernel keep filling the buffer across arriving segments, so a
        // large payload costs few system calls; a signal or end of file returns a short count.
        ssize_t r = retry_eintr([&] { return ::recv(sock, p + got, n - got, MSG_WAITALL); });
        if (r == 0) break;
        if (r < 0) {
            if (errno == ECONNRESET) break;  // the peer died with our data unread: end of file
            throw_os_error("recv");
        }
        got += static_cast<std::size_t>(r);
    }
    return got;
}

void shutdown_socket(int sock, Shutdown how) {
    const int h = how == Shutdown::reads ? SHUT_RD : how == Shutdown::writes ? SHUT_WR : SHUT_RDWR;
    check(::shutdown(sock, h), "shutdown");
}

}  // namespace mp::sys
