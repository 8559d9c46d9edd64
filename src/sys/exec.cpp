#include "sys/exec.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <vector>

#include "multiproc/errors.hpp"
#include "sys/syscall.hpp"

extern char** environ;

namespace mp::sys {

namespace {

// RAII for the two posix_spawn attribute objects.
struct SpawnAttrs {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    SpawnAttrs() {
        if (int e = ::posix_spawn_file_actions_init(&actions))
            throw_os_error("posix_spawn_file_actions_init", e);
        if (int e = ::posix_spawnattr_init(&attr)) {
            ::posix_spawn_file_actions_destroy(&actions);
            throw_os_error("posix_spawnattr_init", e);
        }
    }
    ~SpawnAttrs() {
        ::posix_spawnattr_destroy(&attr);
        ::posix_spawn_file_actions_destroy(&actions);
    }
    SpawnAttrs(const SpawnAttrs&) = delete;
    SpawnAttrs& operator=(const SpawnAttrs&) = delete;
};

void check_spawn(int e, const char* what) {
    if (e) throw_os_error(what, e);
}

}  // namespace

pid_t spawn_with_fds(const char* path, char* const argv[], std::span<const int> fds,
                     char* const envp[]) {
    const int first_free = 3 + static_cast<int>(fds.size());
    // The dup2 actions run in order in the child: a source that sits inside the target range
    // [3, first_free) at another slot would be overwritten by an earlier dup2 before its own
    // turn. Move such sources above the range first (close-on-exec copies, so nothing extra
    // leaks into the child even though they are not closed by closefrom until after).
    std::vector<detail::UniqueFd> moved;
    std::vector<int> src(fds.begin(), fds.end());
    for (std::size_t i = 0; i < src.size(); ++i) {
        int target = 3 + static_cast<int>(i);
        if (src[i] >= 3 && src[i] < first_free && src[i] != target) {
            moved.emplace_back(check(::fcntl(src[i], F_DUPFD_CLOEXEC, first_free),
                                     "fcntl(F_DUPFD_CLOEXEC)"));
            src[i] = moved.back().get();
        }
    }
    SpawnAttrs a;
    for (std::size_t i = 0; i < src.size(); ++i) {
        // glibc (>= 2.29) clears FD_CLOEXEC when source and target are the same descriptor,
        // so the in-place case needs no special handling.
        check_spawn(::posix_spawn_file_actions_adddup2(&a.actions, src[i], 3 + static_cast<int>(i)),
                    "posix_spawn_file_actions_adddup2");
    }
    // Everything is close-on-exec already, but a descriptor another thread or library created
    // without O_CLOEXEC must not reach the child either: close the whole tail.
    check_spawn(::posix_spawn_file_actions_addclosefrom_np(&a.actions, first_free),
                "posix_spawn_file_actions_addclosefrom_np");
    sigset_t empty;
    ::sigemptyset(&empty);
    check_spawn(::posix_spawnattr_setsigmask(&a.attr, &empty), "posix_spawnattr_setsigmask");
    check_spawn(::posix_spawnattr_setflags(&a.attr, POSIX_SPAWN_SETSIGMASK),
                "posix_spawnattr_setflags");
    pid_t pid = -1;
    check_spawn(::posix_spawn(&pid, path, &a.actions, &a.attr, argv, envp ? envp : environ),
                "posix_spawn");
    return pid;
}

void exec_self(char* const argv[], char* const envp[]) noexcept {
    ::execve("/proc/self/exe", argv, envp);
}

}  // namespace mp::sys
