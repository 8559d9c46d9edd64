#include "sys/random.hpp"

#include <sys/mman.h>
#include <sys/random.h>

#include <atomic>
#include <cstring>
#include <new>

#include "multiproc/errors.hpp"
#include "sys/cpu_relax.hpp"
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

namespace {

// One page, wiped to zeros in a forked child: the lock then reads free and `left` empty, so
// the child refills from getrandom whatever state the parent's threads left it in (a lock in
// ordinary memory could stay held forever in a child forked while another thread held it).
struct RandomPool {
    std::atomic<bool> busy;
    std::size_t left;  // unused bytes: bytes[0, left)
    unsigned char bytes[4096 - 2 * sizeof(std::size_t)];
};
static_assert(sizeof(RandomPool) <= 4096);
static_assert(std::atomic<bool>::is_always_lock_free);

// The pool, or null when the kernel cannot wipe it on fork. Never unmapped: it lives as long
// as the process.
RandomPool* pool() noexcept {
    static RandomPool* const p = []() -> RandomPool* {
        void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return nullptr;
        if (::madvise(m, 4096, MADV_WIPEONFORK) != 0) {
            ::munmap(m, 4096);
            return nullptr;
        }
        return new (m) RandomPool{};  // zero-filled, as a wiped page is
    }();
    return p;
}

}  // namespace

void random_bytes_buffered(void* buf, std::size_t n) {
    RandomPool* const p = pool();
    if (!p || n > sizeof p->bytes) return random_bytes(buf, n);
    while (p->busy.exchange(true, std::memory_order_acquire)) cpu_relax();
    try {
        if (p->left < n) {
            random_bytes(p->bytes, sizeof p->bytes);
            p->left = sizeof p->bytes;
        }
    } catch (...) {
        p->busy.store(false, std::memory_order_release);
        throw;
    }
    p->left -= n;
    std::memcpy(buf, p->bytes + p->left, n);
    std::memset(p->bytes + p->left, 0, n);
    p->busy.store(false, std::memory_order_release);
}

}  // namespace mp::sys
