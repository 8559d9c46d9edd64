// The child side of spawn and forkserver: mp::init's recognition of the markers, the bootstrap
// record, and the recursive-spawn guard.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "forkserver.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"
#include "spawn.hpp"
#include "sys/child_fds.hpp"
#include "sys/io.hpp"
#include "sys/memfd.hpp"
#include "sys/pidfd.hpp"
#include "sys/process.hpp"
#include "sys/syscall.hpp"

namespace mp::detail {
namespace {

constexpr std::uint32_t kMagic = 0x6d707370;  // "mpsp"
constexpr std::uint32_t kVersion = 4;

enum class Role { program, spawned_child, forkserver };

// Filled before main by the constructor below; read-only afterwards.
const char* g_argv0 = nullptr;
Role g_role = Role::program;
std::atomic<bool> g_init_ran{false};

[[noreturn]] void missing_init_exit() noexcept {
    static const char msg[] =
        "multiproc: An attempt has been made to start a new process before the current process\n"
        "has finished its bootstrapping phase.\n\n"
        "    This probably means that this program uses the \"spawn\" or \"forkserver\" start\n"
        "    method and its main() does not begin with mp::init(argc, argv): this process is a\n"
        "    child started by the program, and it ran main() again instead of the child's\n"
        "    target. The fix is to call mp::init first thing in main:\n\n"
        "        int main(int argc, char** argv) {\n"
        "            mp::init(argc, argv);\n"
        "            ...\n"
        "        }\n";
    flush_std_streams();
    sys::write_stderr(std::string_view(msg, sizeof msg - 1));
    if (g_role == Role::spawned_child) {
        // Tell the parent why, so that its join() raises a clear error rather than a bare code.
        static_cast<void>(sys::write_once(kSpawnStatusFd, &kMissingInitStatus, 1));
    }
    sys::exit_now(kMissingInitExitCode);
}

// main() returned (or exit() was called) in a child whose mp::init never ran.
void missing_init_at_exit() noexcept {
    if (!g_init_ran.load(std::memory_order_relaxed)) missing_init_exit();
}

// glibc passes (argc, argv, envp) to every .init_array function, so the markers are seen before
// main() and before any static constructor of the program that comes after this library.
__attribute__((constructor)) void record_program_args(int argc, char** argv, char**) {
    if (argc < 1 || !argv) return;
    g_argv0 = argv[0];
    if (argc < 2 || !argv[1]) return;
    if (std::strcmp(argv[1], kSpawnFlag) == 0) g_role = Role::spawned_child;
    else if (std::strcmp(argv[1], kForkServerFlag) == 0) g_role = Role::forkserver;
    else return;
    std::atexit(missing_init_at_exit);
}

}  // namespace

// The target of a child started by spawn/forkserver: the shipped call and its descriptors.
class ShippedTarget final : public TargetCall {
public:
    ShippedTarget(std::vector<std::byte> call, std::vector<UniqueFd> fds)
        : call_(std::move(call)), fds_(std::move(fds)) {}
    [[gnu::hot]] void invoke() override {  // hot: run in fork children (current_process.cpp)
        run_shipped_call(call_, fds_);
    }
    CallPackage package() const override {
        return {std::nullopt, "multiproc: a received call is not shipped again"};
    }
    std::vector<int> fd_numbers() const {
        std::vector<int> out;
        out.reserve(fds_.size());
        for (const auto& f : fds_) out.push_back(f.get());
        return out;
    }
    void forget_fds() noexcept {
        for (auto& f : fds_) static_cast<void>(f.release());
    }
    void renumber_fds(int first) noexcept {
        for (std::size_t i = 0; i < fds_.size(); ++i) {
            static_cast<void>(fds_[i].release());
            fds_[i] = UniqueFd(first + static_cast<int>(i));
        }
    }

private:
    std::vector<std::byte> call_;
    std::vector<UniqueFd> fds_;
};

namespace {

[[noreturn]] void bootstrap_failed(const char* where, const char* what) noexcept {
    std::string msg = std::string("multiproc: ") + where + ": " + what + "\n";
    sys::write_stderr(msg);
    sys::exit_now(1);
}

[[noreturn]] void spawned_child_main() noexcept {
    ChildBootstrap b;
    std::vector<UniqueFd> fds;
    try {
        UniqueFd payload(kSpawnPayloadFd);
        // The status pipe is only for the missing-init report, which cannot happen any more.
        UniqueFd(kSpawnStatusFd).reset();
        std::vector<std::byte> bytes =
            read_bootstrap_file(payload.get(), sys::file_size(payload.get()));
        b = decode_bootstrap(bytes);
        for (std::uint32_t i = 0; i < b.nfds; ++i) {
            int fd = kSpawnFirstCallFd + static_cast<int>(i);
            // Arrived inheritable (dup2 in posix_spawn): make it close-on-exec like every other.
            if (const int r = sys::set_cloexec(fd, true); r < 0)
                throw_os_error("fcntl(F_SETFD)", -r);
            fds.emplace_back(fd);
        }
    } catch (const std::exception& e) {
        bootstrap_failed("spawned child: cannot read its bootstrap record", e.what());
    }
    PreparedChild c;
    try {
        c = prepare_child(std::move(b), std::move(fds), false, -1);
    } catch (const std::exception& e) {
        bootstrap_failed("child process: bootstrap", e.what());
    }
    run_prepared_child(c);
}

}  // namespace

std::vector<std::byte> encode_bootstrap(const CurrentProcess::Info& child,
                                        std::span<const std::byte> call, std::size_t nfds) {
    Encoder e;
    e.bytes().reserve(64 + child.name.size() + child.parent_name.size() + call.size());
    const auto parent = static_cast<std::int32_t>(child.parent_pid);
    const auto n = static_cast<std::uint32_t>(nfds);
    const auto method = static_cast<std::uint8_t>(child.start_method);
    e(kMagic, kVersion, child.name, child.identity, child.daemon, child.off_main_thread, method,
      parent, child.parent_name, child.authkey, child.parent_traced);
    e.write_size(call.size());
    e.write_bytes(call.data(), call.size());
    e(n);
    return std::move(e.bytes());
}

std::vector<std::byte> read_bootstrap_file(int fd, std::uint64_t size) {
    if (size > kMaxBootstrap) throw DecodeError("multiproc: oversized bootstrap record");
    constexpr std::size_t kFirstStep = std::size_t{64} << 10;
    std::vector<std::byte> bytes;
    std::size_t got = 0;
    while (got < size) {
        // Doubling as the bytes come: a file shorter than announced costs what it holds.
        if (got == bytes.size())
            bytes.resize(static_cast<std::size_t>(
                std::min<std::uint64_t>(size, std::max(kFirstStep, got * 2))));
        const std::size_t r = sys::pread_some(fd, bytes.data() + got, bytes.size() - got, got);
        if (r == 0) throw DecodeError("multiproc: truncated bootstrap record");
        got += r;
    }
    return bytes;
}

ChildBootstrap decode_bootstrap(std::span<const std::byte> bytes) {
    Decoder d(bytes);
    std::uint32_t magic = 0, version = 0;
    d(magic, version);
    if (magic != kMagic || version != kVersion)
        throw DecodeError("multiproc: not a bootstrap record of this multiproc version");
    ChildBootstrap b;
    std::int32_t parent = 0;
    std::uint8_t method = 0;
    d(b.name, b.identity, b.daemon, b.off_main_thread, method, parent, b.parent_name, b.authkey,
      b.parent_traced);
    if (method > static_cast<std::uint8_t>(StartMethod::forkserver))
        throw DecodeError("multiproc: corrupt bootstrap record: unknown start method");
    b.start_method = static_cast<StartMethod>(method);
    b.parent_pid = parent;
    auto call = d.take(d.read_count(1));
    b.call.assign(call.begin(), call.end());
    d(b.nfds);
    d.finish();
    return b;
}

PreparedChild::PreparedChild() = default;
PreparedChild::PreparedChild(PreparedChild&&) noexcept = default;
PreparedChild& PreparedChild::operator=(PreparedChild&&) noexcept = default;
PreparedChild::~PreparedChild() = default;

std::vector<int> PreparedChild::call_fds() const {
    return target ? target->fd_numbers() : std::vector<int>{};
}

void PreparedChild::forget_call_fds() noexcept {
    if (target) target->forget_fds();
}

[[gnu::hot]] void PreparedChild::renumber_call_fds(int first) noexcept {
    if (target) target->renumber_fds(first);
}

PreparedChild prepare_child(ChildBootstrap b, std::vector<UniqueFd> fds, bool forked_by_server,
                            int program_pidfd) {
    PreparedChild c;
    c.info = std::make_shared<CurrentProcess::Info>();
    CurrentProcess::Info& info = *c.info;
    info.name = std::move(b.name);
    info.identity = std::move(b.identity);
    info.daemon = b.daemon;
    info.start_method = b.start_method;
    info.authkey = std::move(b.authkey);
    // A forkserver child's real parent is the server's one thread.
    info.off_main_thread = b.off_main_thread && !forked_by_server;
    info.parent_name = std::move(b.parent_name);
    info.parent_pid = b.parent_pid;
    info.parent_traced = b.parent_traced;
    if (forked_by_server) {
        // The child's real parent is the server (what its daemon's death signal follows); the
        // parent the user knows is the program, whose pidfd the server passes down (-1 if it
        // has none: a lazily opened one would be checked against getppid(), the server).
        info.os_parent = sys::current_pid();
        info.parent_pidfd.store(program_pidfd >= 0 ? program_pidfd : -1, std::memory_order_relaxed);
    }
    c.target = std::make_unique<ShippedTarget>(std::move(b.call), std::move(fds));
    return c;
}

[[gnu::hot]] void run_prepared_child(PreparedChild& c) noexcept {
    run_child(std::move(c.info), *c.target.release());  // never returns: nothing to free
}

void enter_if_child(int argc, char** argv) {
    g_init_ran.store(true, std::memory_order_relaxed);
    if (g_role == Role::program || argc < 2 || !argv || !argv[1]) return;
    if (g_role == Role::spawned_child && std::strcmp(argv[1], kSpawnFlag) == 0)
        spawned_child_main();
    if (g_role == Role::forkserver && std::strcmp(argv[1], kForkServerFlag) == 0)
        forkserver_main(argc, argv);
}

void check_not_bootstrapping() noexcept {
    if (g_role != Role::program && !g_init_ran.load(std::memory_order_relaxed)) missing_init_exit();
}

const char* program_argv0() noexcept { return g_argv0 ? g_argv0 : "multiproc-child"; }

std::string missing_init_message(const char* what, pid_t pid) {
    return std::string("multiproc: the ") + what + " (pid " + std::to_string(pid) +
           ") ran main() again instead of its target, because main() does not begin with "
           "mp::init(argc, argv): add `mp::init(argc, argv);` as the first statement of main "
           "(required by the spawn and forkserver start methods)";
}

}  // namespace mp::detail
