#include "sys/signals.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

namespace mp::sys {
namespace {

static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the SIGINT handler only touches lock-free atomics");

// Process-wide: what the handler reads and writes. The eventfd lives while a guard does;
// g_in_handler counts handlers between their first and last touch of g_fd, so that the last
// guard closes it only once no handler can still write to its number (which the next open
// would reuse for an unrelated descriptor).
std::atomic<bool> g_pending{false};
std::atomic<int> g_fd{-1};
std::atomic<int> g_in_handler{0};

// Guards of the process (under g_m) and the disposition the first one replaced.
std::mutex g_m;
int g_guards = 0;
struct sigaction g_previous {};

// Guards held by the calling thread: only they turn its interruptible waits into throws, as
// Python raises KeyboardInterrupt only in the thread that handles signals.
thread_local int t_guards = 0;

void on_sigint(int) noexcept {
    const int saved = errno;
    g_in_handler.fetch_add(1, std::memory_order_seq_cst);
    g_pending.store(true, std::memory_order_seq_cst);
    const int fd = g_fd.load(std::memory_order_seq_cst);
    const std::uint64_t one = 1;
    if (fd >= 0) static_cast<void>(::write(fd, &one, sizeof one));
    g_in_handler.fetch_sub(1, std::memory_order_seq_cst);
    errno = saved;
}

}  // namespace

void sigint_enter() {
    std::lock_guard lk(g_m);
    if (g_guards == 0) {
        g_fd.store(check(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"),
                   std::memory_order_seq_cst);
        g_pending.store(false, std::memory_order_seq_cst);
        struct sigaction sa {};
        sa.sa_handler = on_sigint;
        // SA_RESTART: the program's own blocking calls go on as before; multiproc's waits see
        // the flag and the eventfd instead of relying on EINTR.
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (::sigaction(SIGINT, &sa, &g_previous) != 0) {
            const int err = errno;
            ::close(g_fd.exchange(-1));
            throw_os_error("sigaction(SIGINT)", err);
        }
    }
    ++g_guards;
    ++t_guards;
}

void sigint_leave() noexcept {
    std::lock_guard lk(g_m);
    --t_guards;
    if (--g_guards > 0) return;
    static_cast<void>(::sigaction(SIGINT, &g_previous, nullptr));
    g_pending.store(false, std::memory_order_seq_cst);
    // A handler that loaded the descriptor before the exchange is counted in g_in_handler
    // (it counts itself first); one that starts later reads -1.
    const int fd = g_fd.exchange(-1, std::memory_order_seq_cst);
    while (g_in_handler.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    ::close(fd);
}

void sigint_forget_after_fork() noexcept {
    if (g_guards == 0) return;  // the common case: one load, nothing to undo
    // The eventfd is shared with the parent (fork copies the open file description): the
    // child must neither drain nor fill it.
    const int fd = g_fd.exchange(-1, std::memory_order_relaxed);
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    static_cast<void>(::sigaction(SIGINT, &sa, nullptr));
    if (fd >= 0) ::close(fd);
    g_guards = 0;
    t_guards = 0;
    g_pending.store(false, std::memory_order_relaxed);
    new (&g_m) std::mutex;  // another thread of the parent may have held it at the fork
}

bool sigint_armed() noexcept { return t_guards > 0; }

int sigint_fd(Interruptible i) noexcept {
    return i == Interruptible::yes && t_guards > 0 ? g_fd.load(std::memory_order_relaxed) : -1;
}

void sigint_fd_settle() noexcept {
    // The handler sets the flag before it writes, and a consumer clears the flag before it
    // drains: a drain can therefore race with a SIGINT still on its way, which is why the
    // flag is looked at again after it, and the eventfd filled again if it is set.
    const int fd = g_fd.load(std::memory_order_relaxed);
    if (fd < 0) return;
    std::uint64_t v;
    static_cast<void>(retry_eintr([&] { return ::read(fd, &v, sizeof v); }));
    if (g_pending.load(std::memory_order_seq_cst)) {
        const std::uint64_t one = 1;
        static_cast<void>(::write(fd, &one, sizeof one));
    }
}

void throw_if_sigint(Interruptible i) {
    if (i == Interruptible::no || t_guards == 0) return;
    if (!g_pending.exchange(false, std::memory_order_seq_cst)) return;
    sigint_fd_settle();  // consumed: the eventfd stops waking pollers
    throw KeyboardInterrupt();
}

}  // namespace mp::sys
