// A second thread that does nothing until the test ends, for tests of what a process with more
// than one thread does (the fork-with-threads warning).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace mp::test {

/// While alive, one more thread of this process waits, blocked on a condition variable.
class IdleThread {
public:
    /// Starts the thread.
    IdleThread()
        : thread_([this] {
              std::unique_lock lk(m_);
              cv_.wait(lk, [this] { return done_; });
          }) {}
    IdleThread(const IdleThread&) = delete;
    IdleThread& operator=(const IdleThread&) = delete;
    /// Wakes the thread and joins it.
    ~IdleThread() {
        {
            std::lock_guard lk(m_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

}  // namespace mp::test
