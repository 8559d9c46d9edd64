// The `spawn` start method (CPython's popen_spawn_posix.py): a fresh exec of this program that
// enters through mp::init. The child layout and the bootstrap record are in spawn.hpp.

#include "multiproc/errors.hpp"
#include "spawn.hpp"
#include "sys/exec.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/pidfd.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {
namespace {

// A spawned child is a direct child (DirectChild does the waiting and signalling) plus the
// read end of its status pipe, which says whether it ended for lack of mp::init.
class SpawnedChild final : public Popen {
public:
    SpawnedChild(pid_t pid, UniqueFd pidfd, UniqueFd status) noexcept
        : child_(pid, std::move(pidfd)), status_(std::move(status)) {}
    pid_t pid() const noexcept override { return child_.pid(); }
    int sentinel() const noexcept override { return child_.sentinel(); }
    std::optional<int> poll() override { return check(child_.poll()); }
    std::optional<int> wait(Deadline deadline) override { return check(child_.wait(deadline)); }
    void send_signal(int sig) override { child_.send_signal(sig); }
    void close() noexcept override {
        child_.close();
        std::lock_guard lk(m_);
        status_.reset();
    }

private:
    // The first observer of an exit with the missing-init code learns why, as an exception;
    // later observers see the plain exit code.
    std::optional<int> check(std::optional<int> code) {
        if (!code || *code != kMissingInitExitCode) return code;
        std::unique_lock lk(m_);
        if (!status_) return code;
        char byte = 0;
        const ssize_t r = sys::read_once(status_.get(), &byte, 1);
        status_.reset();
        lk.unlock();
        if (r == 1 && byte == kMissingInitStatus)
            throw ProcessError(missing_init_message("spawned child process", child_.pid()));
        return code;
    }

    DirectChild child_;
    std::mutex m_;
    UniqueFd status_;  // non-blocking read end
};

}  // namespace

std::unique_ptr<Popen> spawn_shipped(const CurrentProcess::Info& child, const ShippedCall& call) {
    check_not_bootstrapping();
    std::vector<std::byte> record = encode_bootstrap(child, call.bytes, call.fds.size());
    UniqueFd payload = sys::make_memfd("multiproc-bootstrap", 0);
    sys::write_all(payload.get(), record.data(), record.size());
    auto status = sys::make_pipe();
    sys::set_nonblocking(status.read.get(), true);

    std::vector<int> fds;
    fds.reserve(2 + call.fds.size());
    fds.push_back(payload.get());
    fds.push_back(status.write.get());
    fds.insert(fds.end(), call.fds.begin(), call.fds.end());
    char* argv[] = {const_cast<char*>(program_argv0()), const_cast<char*>(kSpawnFlag), nullptr};
    // Nothing to flush first: exec does not carry this process's stdio buffers along.
    const std::string program = get_executable();
    pid_t pid = sys::spawn_with_fds(program.c_str(), argv, fds);
    // Only this process reaps the child, so its pid cannot be reused before the pidfd exists.
    UniqueFd pidfd = sys::pidfd_of_new_child(pid);
    return std::make_unique<SpawnedChild>(pid, std::move(pidfd), std::move(status.read));
}

std::unique_ptr<Popen> launch_spawn(const LaunchSpec& spec) {
    CallPackage pkg = spec.target->package();
    if (!pkg.call)
        throw ProcessError("multiproc: cannot start " + spec.child->name +
                           " with the spawn start method: " + pkg.why_not);
    return spawn_shipped(*spec.child, *pkg.call);
}

}  // namespace mp::detail
