// The resource tracker: unlinks the named shared-memory segments a program created and did
// not unlink, once every process of the program is gone, including after SIGKILL.
//
// The tracker is a small process started by the first process that creates a tracked
// segment: a fresh exec of the program's own binary (/proc/self/exe), made by a raw clone
// (no pthread_atfork handlers: it takes no references to shared arenas) twice, so it is
// nobody's child and never shows up as a leaked child, then re-parented to init or the
// nearest subreaper. The exec'd binary becomes the tracker in a library constructor that runs
// before main (it never reaches main), so it holds none of the program's memory. It holds one end of
// an AF_UNIX SOCK_SEQPACKET socket pair; the other end, close-on-exec, stays open in that
// process, is inherited by every process it forks afterwards, and travels with SharedMemory
// handles to spawned children. Each process sends "register"/"unregister" records of one
// name each (one atomic packet); when the last holder of the other end is gone (it exited, was
// killed, or exec'd something else) the tracker reads end-of-file, unlinks every name still
// registered and exits at once. It ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C to the
// program's process group must not stop the cleanup) and keeps no other descriptor than its
// stderr.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "multiproc/detail/fd.hpp"

namespace mp::detail::resource_tracker {

/// Starts the tracker unless this process is already connected to one.
void ensure_running();
/// Registers a segment name (starts the tracker if needed).
void register_name(std::string_view name);
/// Unregisters a segment name (no effect without a tracker).
void unregister_name(std::string_view name);
/// This process's end of the tracker's socket, or -1.
int fd() noexcept;
/// Adopts a received end when this process has none (else closes it).
void adopt(UniqueFd fd);
/// The tracker's pid when this process started it, else 0 (for tests and diagnostics).
pid_t pid() noexcept;
/// Disconnects this process from its tracker (a later registration starts a new one). For
/// tests that need a process to behave as the first process of a program.
void detach() noexcept;

}  // namespace mp::detail::resource_tracker
