// The engine's frame codec where a transport receives whole buffers (the MPI transport): an inbox
// that takes a buffer as its own when nothing waits in it and copies it after a partial frame,
// and the check a relay makes before it passes a buffer of frames on as it is.
#include "frame.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "multiproc/errors.hpp"

namespace {

namespace wire = mp::detail::wire;

std::vector<std::byte> bytes_of(const std::string& s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return std::vector<std::byte>(p, p + s.size());
}

std::string text_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::vector<std::byte> frames(std::initializer_list<std::string> payloads,
                              wire::Kind kind = wire::Kind::tasks) {
    std::vector<std::byte> out;
    for (const auto& p : payloads) wire::put_frame(out, kind, bytes_of(p));
    return out;
}

TEST(FrameInbox, AppendTakesTheBufferWhenNothingWaits) {
    wire::FrameInbox in;
    auto buf = frames({"one", "two"});
    buf.resize(buf.size() + 12);  // a message's trailer, not part of the stream
    const auto* data = buf.data();
    const std::size_t n = buf.size() - 12;
    static_cast<void>(in.append(std::move(buf), n));
    wire::Frame f;
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(f.payload.data() - sizeof(wire::FrameHeader), data);  // no copy
    EXPECT_EQ(text_of(f.payload), "one");
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(text_of(f.payload), "two");
    EXPECT_FALSE(in.next(f, "test"));  // the trailer's bytes are not read as a frame
    EXPECT_TRUE(in.empty());
}

TEST(FrameInbox, AppendAfterAPartialFrameCopiesAndKeepsTheOrder) {
    wire::FrameInbox in;
    const auto all = frames({"first", std::string(100000, 'x'), "third"});
    const std::size_t cut = sizeof(wire::FrameHeader) + 5 + 7;  // inside the second frame
    std::vector<std::byte> head(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(cut));
    std::vector<std::byte> tail(all.begin() + static_cast<std::ptrdiff_t>(cut), all.end());
    static_cast<void>(in.append(std::move(head), cut));
    wire::Frame f;
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(text_of(f.payload), "first");
    EXPECT_FALSE(in.next(f, "test"));
    EXPECT_FALSE(in.empty());
    const auto back = in.append(std::move(tail), all.size() - cut);
    EXPECT_EQ(back.size(), all.size() - cut);  // the caller's buffer, copied, given back
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(text_of(f.payload), std::string(100000, 'x'));
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(text_of(f.payload), "third");
    EXPECT_TRUE(in.empty());
}

TEST(FrameInbox, AppendGivesBackTheBufferItHeldForTheNextReceive) {
    wire::FrameInbox in;
    static_cast<void>(in.append(frames({"a"}), frames({"a"}).size()));
    wire::Frame f;
    ASSERT_TRUE(in.next(f, "test"));
    const auto next = frames({"b"});
    const auto old = in.append(std::vector<std::byte>(next), next.size());
    EXPECT_EQ(old.size(), frames({"a"}).size());
    ASSERT_TRUE(in.next(f, "test"));
    EXPECT_EQ(text_of(f.payload), "b");
}

TEST(FrameInbox, AppendOfALyingLengthIsADecodeError) {
    wire::FrameInbox in;
    std::vector<std::byte> b(sizeof(wire::FrameHeader));
    const wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::tasks), 0,
                              wire::max_frame + 1};
    std::memcpy(b.data(), &h, sizeof h);
    static_cast<void>(in.append(std::move(b), sizeof h));
    wire::Frame f;
    EXPECT_THROW(in.next(f, "test"), mp::DecodeError);
}

TEST(WholeFramesOf, OnlyWholeFramesOfTheKindWithoutDescriptors) {
    const auto ok = frames({"one", "two", ""});
    EXPECT_TRUE(wire::whole_frames_of(ok, wire::Kind::tasks));
    EXPECT_TRUE(wire::whole_frames_of({}, wire::Kind::tasks));
    // Cut anywhere: a partial header, a partial payload.
    EXPECT_FALSE(wire::whole_frames_of(std::span(ok).first(5), wire::Kind::tasks));
    EXPECT_FALSE(wire::whole_frames_of(std::span(ok).first(ok.size() - 1), wire::Kind::tasks));
    // Another kind among them (an exit frame the relay must act on).
    auto mixed = frames({"one"});
    wire::put_frame(mixed, wire::Kind::exit);
    EXPECT_FALSE(wire::whole_frames_of(mixed, wire::Kind::tasks));
    // A frame that says it carries descriptors.
    std::vector<std::byte> with_fd;
    wire::put_frame(with_fd, wire::Kind::tasks, bytes_of("x"), 1);
    EXPECT_FALSE(wire::whole_frames_of(with_fd, wire::Kind::tasks));
    // A length past the end, and one so large that adding the header would wrap.
    std::vector<std::byte> lying(sizeof(wire::FrameHeader));
    for (const std::uint64_t len : {std::uint64_t{1}, ~std::uint64_t{0}}) {
        const wire::FrameHeader h{static_cast<std::uint32_t>(wire::Kind::tasks), 0, len};
        std::memcpy(lying.data(), &h, sizeof h);
        EXPECT_FALSE(wire::whole_frames_of(lying, wire::Kind::tasks));
    }
}

}  // namespace
