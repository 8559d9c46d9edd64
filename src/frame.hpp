// The engine's frame codec, one for both ends (the supervisor and a worker): how frames are laid
// out in bytes, built at the end of a buffer, cut out of the bytes that arrived, and how the
// records of a tasks or results frame are written and read. What the frames mean:
// engine_protocol.hpp.
//
//   +------------+------------+-------------+------------------+
//   | u32 kind   | u32 nfds   | u64 length  | payload (length) |   descriptors (nfds) ride with
//   +------------+------------+-------------+------------------+   the frame's first bytes
//
//   records payload (tasks, results):  u32 count | count x record
//     tasks record    u64 id | u32 nfds | u64 n | n bytes
//     results record  u64 id | u64 ns | u32 nfds | u64 n | n bytes
//
// Host byte order: both ends are the same program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "multiproc/detail/fd.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"

namespace mp::detail::wire {

enum class Kind : std::uint32_t {
    init = 1,
    tasks = 2,
    exit = 3,
    ready = 4,
    init_failed = 5,
    results = 6,
    retire = 7,
    limits = 8
};

struct FrameHeader {
    std::uint32_t kind;
    std::uint32_t nfds;
    std::uint64_t length;
};
static_assert(sizeof(FrameHeader) == 16);

/// Frames larger than this are a protocol error (a corrupt length), not an allocation.
inline constexpr std::uint64_t max_frame = std::uint64_t{1} << 40;

/// Appends a frame with `payload` to out; it carries `nfds` descriptors.
void put_frame(std::vector<std::byte>& out, Kind kind, std::span<const std::byte> payload = {},
               std::uint32_t nfds = 0);

/// Builds a tasks or results frame at the end of a buffer, one record at a time: begin(id),
/// append the record's bytes to the buffer, end(nfds, ns); then finish(nfds of the frame).
/// The buffer must not be replaced while the frame is being built.
class RecordWriter {
public:
    /// Starts the frame at the end of out.
    RecordWriter(std::vector<std::byte>& out, Kind kind);
    /// Starts a record: the bytes appended to the buffer until end() are its call or result.
    void begin(std::uint64_t id);
    /// Ends the record started last: it carries `nfds` descriptors (results: and took `ns`).
    void end(std::uint32_t nfds, std::uint64_t ns = 0);
    /// Writes the record count and the frame's header (the frame carries `nfds` descriptors).
    void finish(std::uint32_t nfds);
    /// Records written so far.
    [[nodiscard]] std::uint32_t count() const noexcept { return count_; }

private:
    std::vector<std::byte>& out_;
    Kind kind_;
    std::size_t start_;
    std::size_t rec_ = 0;
    std::uint32_t count_ = 0;
};

/// One record of a tasks frame (ns is 0 there) or of a results frame: its descriptors are the
/// frame's [first_fd, first_fd + nfds).
struct FrameRecord {
    std::uint64_t id = 0;
    std::uint64_t ns = 0;
    std::uint32_t nfds = 0;
    std::size_t first_fd = 0;
    std::span<const std::byte> bytes;
};

/// Reads the records of a tasks or results frame (its payload, which came with `nfds`
/// descriptors) one at a time, checking each against the bytes and descriptors left:
/// mp::DecodeError for anything that does not fit. Reads only; allocates nothing.
class FrameRecords {
public:
    FrameRecords(Kind kind, std::span<const std::byte> payload, std::size_t nfds);
    /// The next record into r; false after the last (mp::DecodeError on trailing bytes).
    bool next(FrameRecord& r);

private:
    Decoder d_;
    bool results_;
    std::size_t nfds_;
    std::uint32_t count_ = 0, done_ = 0;
    std::size_t fd_at_ = 0;
};

/// True when `bytes` are whole frames, every one of `kind` and without descriptors: a relay may
/// pass them on as they are.
[[nodiscard]] bool whole_frames_of(std::span<const std::byte> bytes, Kind kind) noexcept;

/// A frame cut out of the received bytes: valid until the inbox is read into again.
struct Frame {
    FrameHeader header{};
    std::span<const std::byte> payload;
    std::vector<UniqueFd> fds;  ///< the frame's descriptors, in the order sent

    [[nodiscard]] Kind kind() const noexcept { return static_cast<Kind>(header.kind); }
};

/// The bytes and descriptors that arrived from one peer, cut into whole frames. The buffer grows
/// with the bytes that arrive (doubling), never to a length a header announces ahead of them: a
/// corrupt header costs what was sent, not what it claims.
class FrameInbox {
public:
    /// Room for the next read (at least a quarter of a read chunk); when short of room, the bytes
    /// not taken yet move to the front first.
    std::span<std::byte> space();
    /// `n` bytes were read into space().
    void commit(std::size_t n) noexcept { len_ += n; }
    /// The first `n` bytes of `bytes` arrived (a transport that receives whole buffers): taken
    /// as the inbox's buffer when nothing waits in it, without a copy, else copied after.
    /// Returns the buffer it no longer needs (its old one, or `bytes`), for the next receive.
    std::vector<std::byte> append(std::vector<std::byte>&& bytes, std::size_t n);
    /// True when every byte and descriptor that arrived was taken as frames.
    [[nodiscard]] bool empty() const noexcept { return pos_ == len_ && fds_.empty(); }
    /// Where arriving descriptors are appended.
    std::vector<UniqueFd>& arriving_fds() noexcept { return fds_; }
    /// The next whole frame into f; false when its bytes are not all here. mp::DecodeError on a
    /// corrupt length or missing descriptors (`who` names the peer in the message).
    bool next(Frame& f, const char* who);

private:
    std::vector<std::byte> buf_;
    std::size_t pos_ = 0;  // start of the first frame not taken
    std::size_t len_ = 0;  // end of the bytes received
    std::vector<UniqueFd> fds_;
};

}  // namespace mp::detail::wire
