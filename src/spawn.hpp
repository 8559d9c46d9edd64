// The child side shared by the spawn and forkserver start methods: what a child needs to become
// its Process (the bootstrap record), how mp::init recognises such a child, and the detection
// of a program that uses spawn without calling mp::init (Python's recursive-spawn pitfall).
//
// A spawned child is `/proc/self/exe` re-executed as
//     argv = { <the parent's argv[0]>, "--multiproc-spawn", nullptr }
// with this descriptor layout:
//     0, 1, 2   stdio, inherited
//     3         a memfd holding the bootstrap record (read once, then closed)
//     4         the write end of the status pipe (only written when mp::init was not called)
//     5 ...     the descriptors the shipped call carries, in the call's order
// and nothing else. The forkserver is `/proc/self/exe` executed with "--multiproc-forkserver"
// and its control socket at descriptor 3 (see forkserver.hpp).
//
// The bootstrap record (mp::Encoder, host byte order):
//   +-------+---------+------+----------+--------+-----------------+--------------+------------+-------------+---------+-------+------+
//   | magic | version | name | identity | daemon | off main thread | start method | parent pid | parent name | authkey | call  | nfds |
//   | u32   | u32     | str  | vec<int> | bool   | bool            | u8           | i32        | str         | str     | bytes | u32  |
//   +-------+---------+------+----------+--------+-----------------+--------------+------------+-------------+---------+-------+------+
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/fd.hpp"
#include "popen.hpp"

namespace mp::detail {

/// argv[1] of a spawned child.
inline constexpr const char* kSpawnFlag = "--multiproc-spawn";
/// argv[1] of the forkserver process.
inline constexpr const char* kForkServerFlag = "--multiproc-forkserver";
/// Exit code of a spawned child (or forkserver) whose program never called mp::init.
inline constexpr int kMissingInitExitCode = 70;  // EX_SOFTWARE
/// The byte a spawned child writes to its status pipe when mp::init was missing.
inline constexpr char kMissingInitStatus = 'I';

inline constexpr int kSpawnPayloadFd = 3;
inline constexpr int kSpawnStatusFd = 4;
inline constexpr int kSpawnFirstCallFd = 5;

/// Everything a child started by spawn or forkserver needs: its identity and its call.
struct ChildBootstrap {
    std::string name;
    std::vector<int> identity;
    bool daemon = false;
    bool off_main_thread = false;                   // CurrentProcess::Info::off_main_thread
    StartMethod start_method = StartMethod::spawn;  // the method that started the child
    pid_t parent_pid = 0;
    std::string parent_name;
    std::string authkey;          // CurrentProcess::Info::authkey
    bool parent_traced = false;   // CurrentProcess::Info::parent_traced
    std::vector<std::byte> call;  // ShippedCall::bytes
    std::uint32_t nfds = 0;       // how many descriptors travel with the call
};

/// Encodes the bootstrap record of a child with identity `child` that runs `call` (carrying
/// `nfds` descriptors).
std::vector<std::byte> encode_bootstrap(const CurrentProcess::Info& child,
                                        std::span<const std::byte> call, std::size_t nfds);
/// Decodes a bootstrap record (mp::DecodeError when it is not one).
ChildBootstrap decode_bootstrap(std::span<const std::byte> bytes);
/// Records longer than this are refused before anything is allocated for them.
inline constexpr std::uint64_t kMaxBootstrap = std::uint64_t{1} << 31;
/// Reads the `size`-byte bootstrap record that the file `fd` (a memfd) holds from offset 0:
/// mp::DecodeError when size exceeds kMaxBootstrap or the file holds fewer bytes. The buffer
/// grows with the bytes read, never ahead of them.
std::vector<std::byte> read_bootstrap_file(int fd, std::uint64_t size);

class ShippedTarget;  // spawn_child.cpp

/// A child of spawn or forkserver, ready to run: its identity and its target. The forkserver
/// builds it before fork, so that its child allocates nothing (every heap page a fork child
/// writes is a page copied).
struct PreparedChild {
    std::shared_ptr<CurrentProcess::Info> info;
    std::unique_ptr<ShippedTarget> target;
    PreparedChild();
    PreparedChild(PreparedChild&&) noexcept;
    PreparedChild& operator=(PreparedChild&&) noexcept;
    ~PreparedChild();
    /// The call's descriptors, in order (still owned by the target).
    [[nodiscard]] std::vector<int> call_fds() const;
    /// Stops owning the call's descriptors without closing them (their numbers are stale).
    void forget_call_fds() noexcept;
    /// The call's descriptors are now 3, 4, ... (the forkserver child moved them there).
    void renumber_call_fds(int first) noexcept;
};

/// Builds the child described by b, with the call's descriptors `fds`. A forkserver child
/// (forked_by_server) sees the server as the parent for run_child, then the program
/// (b.parent_pid, whose pidfd will be at `program_pidfd` in the child, -1 if none) as Python's
/// parent_process(). Throws on allocation failure.
PreparedChild prepare_child(ChildBootstrap b, std::vector<UniqueFd> fds, bool forked_by_server,
                            int program_pidfd);
/// Becomes the prepared Process: adopts its identity, runs the shipped call and exits with
/// Python's exit code (shared by the spawned child and the forkserver's children). Never returns.
[[noreturn]] void run_prepared_child(PreparedChild& c) noexcept;

/// mp::init's work: in a spawned child or the forkserver process, becomes it and never
/// returns; in any other process returns at once (after recording that mp::init ran).
void enter_if_child(int argc, char** argv);
/// Called before a process is started: in a spawned child or forkserver whose main did not
/// begin with mp::init, prints Python's bootstrapping message and exits with
/// kMissingInitExitCode (the parent turns this into an mp::ProcessError).
void check_not_bootstrapping() noexcept;
/// This program's argv[0] as the C library passed it before main (for the children's ps line).
const char* program_argv0() noexcept;
/// The message the parent raises (as mp::ProcessError) for a child that lacked mp::init.
std::string missing_init_message(const char* what, pid_t pid);

/// Starts a spawned child with identity `child` running `call`.
std::unique_ptr<Popen> spawn_shipped(const CurrentProcess::Info& child, const ShippedCall& call);
/// Has the forkserver fork a child with identity `child` running `call`.
std::unique_ptr<Popen> forkserver_shipped(const CurrentProcess::Info& child,
                                          const ShippedCall& call);

/// The `spawn` start method: a fresh exec of this program running spec's target.
std::unique_ptr<Popen> launch_spawn(const LaunchSpec& spec);
/// The `forkserver` start method: the forkserver forks a child running spec's target.
std::unique_ptr<Popen> launch_forkserver(const LaunchSpec& spec);

}  // namespace mp::detail
