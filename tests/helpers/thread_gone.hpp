// Waiting for a thread of this process to be gone, for tests of what the kernel does when a
// thread ends (a child's death signal follows the thread that started it).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace mp::test {

/// Waits (at most 30 s) until thread `tid` has left /proc/self/task: by then the kernel has
/// handed its children to another thread and sent them their death signal.
inline void wait_thread_gone(pid_t tid) {
    const std::string path = "/proc/self/task/" + std::to_string(tid);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (::access(path.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace mp::test
