#include "frame.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace mp::detail::wire {

namespace {

// A read asks for at least a quarter of this; the buffer grows by this or by doubling.
constexpr std::size_t kReadChunk = std::size_t{256} << 10;

template <class T>
void put(std::vector<std::byte>& b, const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + sizeof v);
}

template <class T>
void patch(std::vector<std::byte>& b, std::size_t at, const T& v) {
    std::memcpy(b.data() + at, &v, sizeof v);
}

void put_header(std::vector<std::byte>& out, std::size_t at, Kind kind, std::uint32_t nfds) {
    const FrameHeader h{static_cast<std::uint32_t>(kind), nfds,
                        out.size() - at - sizeof(FrameHeader)};
    patch(out, at, h);
}

}  // namespace

void put_frame(std::vector<std::byte>& out, Kind kind, std::span<const std::byte> payload,
               std::uint32_t nfds) {
    const std::size_t at = out.size();
    out.resize(at + sizeof(FrameHeader));
    out.insert(out.end(), payload.begin(), payload.end());
    put_header(out, at, kind, nfds);
}

RecordWriter::RecordWriter(std::vector<std::byte>& out, Kind kind)
    : out_(out), kind_(kind), start_(out.size()) {
    out_.resize(start_ + sizeof(FrameHeader) + sizeof(std::uint32_t));
}

void RecordWriter::begin(std::uint64_t id) {
    ++count_;
    put(out_, id);
    rec_ = out_.size();
    if (kind_ == Kind::results) put(out_, std::uint64_t{0});
    put(out_, std::uint32_t{0});
    put(out_, std::uint64_t{0});
}

void RecordWriter::end(std::uint32_t nfds, std::uint64_t ns) {
    std::size_t at = rec_;
    if (kind_ == Kind::results) {
        patch(out_, at, ns);
        at += sizeof ns;
    }
    patch(out_, at, nfds);
    at += sizeof nfds;
    patch(out_, at, static_cast<std::uint64_t>(out_.size() - (at + sizeof(std::uint64_t))));
}

void RecordWriter::finish(std::uint32_t nfds) {
    patch(out_, start_ + sizeof(FrameHeader), count_);
    put_header(out_, start_, kind_, nfds);
}

FrameRecords::FrameRecords(Kind kind, std::span<const std::byte> payload, std::size_t nfds)
    : d_(payload), results_(kind == Kind::results), nfds_(nfds) {
    d_.read_bytes(&count_, sizeof count_);
}

bool FrameRecords::next(FrameRecord& r) {
    if (done_ == count_) {
        d_.finish();
        return false;
    }
    ++done_;
    d_.read_bytes(&r.id, sizeof r.id);
    r.ns = 0;
    if (results_) d_.read_bytes(&r.ns, sizeof r.ns);
    d_.read_bytes(&r.nfds, sizeof r.nfds);
    r.bytes = d_.take(d_.read_count(1));
    if (r.nfds > nfds_ - fd_at_)
        throw DecodeError("multiproc: engine: descriptors missing from a frame");
    r.first_fd = fd_at_;
    fd_at_ += r.nfds;
    return true;
}

bool whole_frames_of(std::span<const std::byte> bytes, Kind kind) noexcept {
    while (!bytes.empty()) {
        FrameHeader h;
        if (bytes.size() < sizeof h) return false;
        std::memcpy(&h, bytes.data(), sizeof h);
        if (h.kind != static_cast<std::uint32_t>(kind) || h.nfds != 0 ||
            h.length > bytes.size() - sizeof h)
            return false;
        bytes = bytes.subspan(sizeof h + static_cast<std::size_t>(h.length));
    }
    return true;
}

std::span<std::byte> FrameInbox::space() {
    if (pos_ == len_) pos_ = len_ = 0;  // everything taken: start over, nothing to move
    if (buf_.size() - len_ < kReadChunk / 4 && pos_) {
        // Short of room: the bytes not taken yet (the start of a frame) move to the front, once,
        // rather than after every frame.
        std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
        len_ -= pos_;
        pos_ = 0;
    }
    if (buf_.size() - len_ < kReadChunk / 4)
        buf_.resize(std::max(len_ + kReadChunk, buf_.size() * 2));
    return std::span<std::byte>(buf_).subspan(len_);
}

std::vector<std::byte> FrameInbox::append(std::vector<std::byte>&& bytes, std::size_t n) {
    n = std::min(n, bytes.size());
    if (pos_ == len_) {
        buf_.swap(bytes);
        pos_ = 0;
        len_ = n;
        return std::move(bytes);
    }
    for (std::span<const std::byte> rest(bytes.data(), n); !rest.empty();) {
        const auto room = space();
        const std::size_t k = std::min(room.size(), rest.size());
        std::memcpy(room.data(), rest.data(), k);
        commit(k);
        rest = rest.subspan(k);
    }
    return std::move(bytes);
}

bool FrameInbox::next(Frame& f, const char* who) {
    if (len_ - pos_ < sizeof(FrameHeader)) return false;
    FrameHeader h;
    std::memcpy(&h, buf_.data() + pos_, sizeof h);
    if (h.length > max_frame) throw DecodeError(std::string(who) + ": corrupt frame length");
    const std::size_t need = sizeof h + static_cast<std::size_t>(h.length);
    if (len_ - pos_ < need) return false;
    if (fds_.size() < h.nfds)
        throw DecodeError(std::string(who) + ": descriptors missing from a frame");
    f.header = h;
    f.payload = std::span<const std::byte>(buf_.data() + pos_ + sizeof h,
                                           static_cast<std::size_t>(h.length));
    f.fds.clear();
    for (std::uint32_t i = 0; i < h.nfds; ++i) f.fds.push_back(std::move(fds_[i]));
    fds_.erase(fds_.begin(), fds_.begin() + static_cast<std::ptrdiff_t>(h.nfds));
    pos_ += need;
    return true;
}

}  // namespace mp::detail::wire
