// What travels between rank 0 (the engine's supervisor) and a worker rank: MPI messages on one
// tag of the job's communicator (job_comm: MPI_COMM_WORLD unless rank 0 spawned its workers),
// each bytes then a MessageTrailer (at the end, so that a buffer of frames becomes a message by
// appending 12 bytes, not by a copy). A rank has slots (one local worker process each,
// mpi_rank.cpp); rank 0 holds each slot as one engine worker. Data messages carry a slot's frame
// stream (frame.hpp) cut anywhere (at most kMaxPiece bytes a message: MPI counts are ints); MPI
// keeps the order of the messages of one sender to one receiver on one tag, so the receiver
// appends their bytes to the slot's stream. A session is one engine's use of a slot (init frame
// .. exit frame); the session number lets either end drop what a cancelled session left behind.
#pragma once

#include <mpi.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace mp::detail::mpi {

/// The tag of every message multiproc sends (other tags are the program's).
inline constexpr int kTag = 0x6d70;
/// Bytes of one data message at most.
inline constexpr std::size_t kMaxPiece = std::size_t{1} << 30;
/// Buffers of sent or received messages kept for the next ones (a batch of tiny tasks is
/// megabytes: a fresh buffer would be faulted in and zeroed again for each): at most `Count`
/// of them, none above 16 MiB. Not locked: its owner's lock, if any, guards it.
template <std::size_t Count>
class SpareBuffers {
public:
    /// Keeps `buf` (as it is: a receive reuses its bytes unzeroed) unless full or too large.
    void keep(std::vector<std::byte>&& buf) {
        if (buf.capacity() <= kMaxBytes && n_ < Count) bufs_[n_++] = std::move(buf);
    }
    /// A kept buffer, or an empty one.
    std::vector<std::byte> take() noexcept {
        return n_ ? std::move(bufs_[--n_]) : std::vector<std::byte>{};
    }

private:
    static constexpr std::size_t kMaxBytes = std::size_t{16} << 20;
    std::array<std::vector<std::byte>, Count> bufs_;
    std::size_t n_ = 0;
};

enum class MessageKind : std::uint32_t {
    data = 1,       ///< frame bytes of the session
    cancel = 2,     ///< rank 0 -> rank: the session ends now (the pool was terminated)
    shutdown = 3,   ///< rank 0 -> rank: the job ends; the rank finalizes MPI and exits 0
    heartbeat = 4,  ///< rank -> rank 0, every kHeartbeat: the rank is alive (even in a long task)
    slot_died = 5,  ///< rank -> rank 0: the slot's worker process died mid-session (SlotDeath)
    /// rank -> rank 0: the slot's worker process exited after its exit frame (retired after
    /// maxtasksperchild tasks; SlotDeath, culprit 0): rank 0 opens the slot again.
    slot_retired = 6,
    /// rank 0 -> rank: kill the slot's worker process now (its task was cancelled with
    /// mp::force); the rank reports its death (slot_died) and the session goes on.
    kill = 7,
};

/// How often a worker rank says it is alive.
inline constexpr auto kHeartbeat = std::chrono::milliseconds(500);

struct MessageTrailer {
    MessageKind kind;
    std::uint32_t session;
    std::uint32_t slot;  ///< which of the rank's slots (0 for shutdown and heartbeat)
};

/// A slot_died message's bytes, then the text of how it died ("worker process 4711 was killed
/// by signal 9 (SIGKILL)").
struct SlotDeath {
    std::uint64_t timed_out;  ///< 1: the rank killed it, its task overran its time limit
    std::uint64_t culprit;    ///< the task it was running (0: none)
    std::uint64_t element;    ///< the item of that task it was running
    std::uint64_t pid;        ///< the worker process's pid (on the rank's host)
};

/// A message: `bytes`, then the trailer.
std::vector<std::byte> make_message(MessageKind kind, std::uint32_t session,
                                    std::span<const std::byte> bytes = {}, std::uint32_t slot = 0);

/// Appends to `out` the data messages of `slot` that carry `bytes`, which it takes: a buffer of
/// at most kMaxPiece becomes the one message (its trailer appended in place, no copy), a larger
/// one is cut into pieces.
void split_data(std::vector<std::vector<std::byte>>& out, std::uint32_t session,
                std::vector<std::byte>&& bytes, std::uint32_t slot = 0);

/// The trailer of a received message (mp::DecodeError when it is shorter than one).
MessageTrailer trailer_of(std::span<const std::byte> message);

/// The bytes of a received message before its trailer.
inline std::span<const std::byte> body_of(std::span<const std::byte> message) noexcept {
    return message.first(message.size() - sizeof(MessageTrailer));
}

/// Receives the message `status` (from MPI_Iprobe) announced, into `into` (a buffer of an
/// earlier message, reused: sized down, not cleared, so that its bytes are not zeroed again);
/// mp::ProcessError naming `what` if MPI fails.
std::vector<std::byte> receive_probed(MPI_Status& status, const char* what,
                                      std::vector<std::byte> into = {});

/// Throws mp::ProcessError "<what>: MPI error <text>" unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* what);

}  // namespace mp::detail::mpi
