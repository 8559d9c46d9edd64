// Stream-socket transfers the Connection needs beyond sys/socket.hpp: whole-buffer receives
// that loop inside the kernel (MSG_WAITALL), and shutting one direction of a socket.
#pragma once

#include <cstddef>

namespace mp::sys {

/// Receives exactly n bytes unless the peer closes first; returns the count received (< n only
/// at end of file). A connection reset by the peer counts as end of file.
std::size_t recv_all(int sock, void* buf, std::size_t n);
/// The directions of a socket shutdown_socket ends.
enum class Shutdown { reads, writes, both };
/// shutdown(2) of the reading (SHUT_RD), writing (SHUT_WR) or both directions.
void shutdown_socket(int sock, Shutdown how);

}  // namespace mp::sys
