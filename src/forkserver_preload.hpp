// The forkserver's preload (Python's set_forkserver_preload, with a shipped call in place of
// module names): the call the server runs once, after it starts and before it serves, so that
// every child it forks inherits what the call built (tables, a parsed configuration) copy-on-
// write instead of building it again.
//
// The program sends the call right after it started the server, on the control socket, as one
// message in the request format of forkserver.hpp:
//   +--------------------+----------+-------------------+
//   | u32 kPreloadRequest| u32 zero | u64 record length |     SCM_RIGHTS: [memfd, call fds...]
//   +--------------------+----------+-------------------+
// the memfd holding the shipped call (callable.hpp) from offset 0, or nothing (length 0) when
// the preload was cleared since the server was started. The server answers with one
// message on the same socket: 'K' when the call returned, 'E' + "type: what" when it threw
// (the server then exits with code 1). A server that ends without answering (std::exit or a
// crash in the call, or a program without mp::init) is an end of file for the program.
// The server is told to expect the message by kPreloadFlag among its arguments: a server
// started with no preload set reads none, and starts as fast as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "multiproc/callable.hpp"

namespace mp::detail {

/// The kind of the preload message (beside forkserver.hpp's kInlineRequest, kMemfdRequest).
inline constexpr std::uint32_t kPreloadRequest = 3;
/// An argument of the forkserver process: a preload message comes first on its control socket.
inline constexpr const char* kPreloadFlag = "--preload";

/// Checks a preload message that arrived with `nfds` descriptors (the memfd first) and returns
/// its record's length (mp::DecodeError when malformed).
[[nodiscard]] std::uint64_t parse_preload_request(std::span<const std::byte> msg, std::size_t nfds);
/// True when a preload is set (a forkserver started now is given it).
[[nodiscard]] bool has_forkserver_preload();
/// Sends the preload to a server just started on `control` and waits until it ran: returns
/// then; mp::ProcessError carrying the call's exception when it threw; mp::EOFError when the
/// server ended without an answer.
void send_forkserver_preload(int control);
/// In the server: reads the preload message from `control`, runs the call, flushes stdio and
/// answers; exits the process with code 1 when the message is malformed or the call threw.
void run_forkserver_preload(int control) noexcept;

}  // namespace mp::detail
