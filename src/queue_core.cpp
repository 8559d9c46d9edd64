// Attaching a QueueCore to a queue's memory: the read-only header is checked once and copied.
#include <bit>
#include <string>

#include "queue_core.hpp"

namespace mp::detail {
namespace {

// The read-only part of the header as it must be for a queue of `maxsize` (what the creator
// wrote), or nullptr.
const char* header_error(std::uint64_t magic, std::int64_t maxsize, std::uint64_t span,
                         std::uint64_t ring_off, std::uint64_t ring_cap, std::uint64_t ring_mask) {
    if (magic != kMagic || span != kSpan) return "header";
    if (maxsize < 0) return "maxsize";
    const std::uint64_t cap =
        maxsize > 0 ? std::min(static_cast<std::uint64_t>(maxsize), kRingMax) : kRingUnbounded;
    if (ring_cap != cap) return "ring capacity";
    if (ring_off != kChunk) return "ring offset";
    if (ring_mask != (std::has_single_bit(cap) ? cap - 1 : 0)) return "ring mask";
    return nullptr;
}

}  // namespace

void corrupt(const char* what) {
    throw ProcessError(std::string("multiproc: queue memory is corrupt (") + what + ")");
}

QueueCore::QueueCore(UniqueFd fd, sys::Mapping map) : fd_(std::move(fd)), map_(std::move(map)) {
    sh_ = reinterpret_cast<Shared*>(map_.data());
    const Shared& s = *sh_;
    maxsize_ = read_once(s.maxsize);
    cap_ = read_once(s.ring_cap);
    mask_ = read_once(s.ring_mask);
    if (const char* e = header_error(read_once(s.magic), maxsize_, read_once(s.span),
                                     read_once(s.ring_off), cap_, mask_))
        corrupt(e);
    ring_end_ = kChunk + ((cap_ * kSlot + kChunk - 1) & ~std::uint64_t{kChunk - 1});
}

}  // namespace mp::detail
