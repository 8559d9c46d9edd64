// The `forkserver` start method (CPython's popen_forkserver.py): the child belongs to the
// forkserver; this process holds its pidfd (signals, sentinel) and a socket on which the server
// sends the exit status once it has reaped the child.

#include <cstdint>
#include <mutex>

#include "forkserver.hpp"
#include "multiproc/errors.hpp"
#include "spawn.hpp"
#include "sys/io.hpp"
#include "sys/pidfd.hpp"
#include "sys/process.hpp"
#include "sys/syscall.hpp"
#include "sys/wait.hpp"
#include "trace_hook.hpp"

namespace mp::detail {
namespace {

// Python's returncode when the server vanished before it could report the status.
constexpr int kUnknownExitCode = 255;

class ServedChildPopen final : public Popen {
public:
    explicit ServedChildPopen(ServerChild c) noexcept
        : pid_(c.pid), pidfd_(std::move(c.pidfd)), status_(std::move(c.status)) {}
    pid_t pid() const noexcept override { return pid_; }
    int sentinel() const noexcept override { return pidfd_.get(); }

    std::optional<int> poll() override {
        std::lock_guard lk(m_);
        return poll_locked();
    }

    std::optional<int> wait(Deadline deadline) override {
        for (;;) {
            int fd;
            {
                std::lock_guard lk(m_);
                if (code_) return code_;
                // Normally the status socket (readable once the server has reaped the child);
                // after the server's death, the pidfd (readable once the child has exited).
                fd = !status_done_ && status_ ? status_.get() : pidfd_.get();
                if (fd < 0) return std::nullopt;
            }
            // Straight to the blocking wait (no zero-timeout check first: one poll(2), then
            // the read of the status, per join of a running child).
            if (!sys::wait_readable(fd, deadline)) return poll();
            std::lock_guard lk(m_);
            if (auto c = poll_locked(fd == status_.get())) return c;
        }
    }

    void send_signal(int sig) override {
        std::lock_guard lk(m_);
        if (code_ || !pidfd_) return;
        int r = sys::pidfd_send_signal(pidfd_.get(), sig);
        if (r < 0 && r != -ESRCH) throw_os_error("pidfd_send_signal", -r);
    }

    void close() noexcept override {
        std::lock_guard lk(m_);
        pidfd_.reset();
        status_.reset();
    }

private:
    // status_readable: the caller has just seen the status socket readable (a read will not block).
    std::optional<int> poll_locked(bool status_readable = false) {
        if (code_) return code_;
        if (!status_done_ && status_) {
            if (!status_readable &&
                !sys::wait_readable(status_.get(), Deadline(Timeout(std::chrono::seconds(0)))))
                return std::nullopt;
            std::int32_t st = 0;
            std::size_t n = sys::read_full(status_.get(), &st, sizeof st);
            status_done_ = true;
            if (n == sizeof st) {
                code_ = sys::exit_code_of(st);
                return code_;
            }
            // EOF without a status: the server died. The child may still be running.
        }
        if (pidfd_ && sys::wait_readable(pidfd_.get(), Deadline(Timeout(std::chrono::seconds(0)))))
            code_ = kUnknownExitCode;
        return code_;
    }

    const pid_t pid_;
    std::mutex m_;
    UniqueFd pidfd_;
    // Descriptors are only closed by close() (which may not race with other calls): another
    // thread may be blocked in poll(2) on them in wait(), without the lock.
    UniqueFd status_;
    bool status_done_ = false;  // the status (or the server's EOF) has been read
    std::optional<int> code_;
};

}  // namespace

std::unique_ptr<Popen> forkserver_shipped(const CurrentProcess::Info& child,
                                          const ShippedCall& call) {
    check_not_bootstrapping();
    std::vector<std::byte> record = encode_bootstrap(child, call.bytes, call.fds.size());
    const std::uint64_t t0 = trace::now_ns();
    auto popen = std::make_unique<ServedChildPopen>(forkserver_fork(record, call.fds));
    if (trace::on())
        trace::add(trace::SpanEvent{sys::current_pid(), "forkserver request: " + child.name,
                                    "forkserver", t0, trace::now_ns(),
                                    "\"bytes\":" + std::to_string(record.size())});
    return popen;
}

std::unique_ptr<Popen> launch_forkserver(const LaunchSpec& spec) {
    CallPackage pkg = spec.target->package();
    if (!pkg.call)
        throw ProcessError("multiproc: cannot start " + spec.child->name +
                           " with the forkserver start method: " + pkg.why_not);
    return forkserver_shipped(*spec.child, *pkg.call);
}

}  // namespace mp::detail
