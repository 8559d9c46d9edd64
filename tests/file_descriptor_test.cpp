// FileDescriptor, send_handle / recv_handle and Connection(int): descriptors that cross
// processes under every start method, as handles, inside a user type, and through a Connection.
#include "multiproc/file_descriptor.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "helpers/start_method_test.hpp"
#include "multiproc/process.hpp"
#include "sys/io.hpp"

namespace {

std::string read_all(int fd) {
    std::string s;
    char buf[256];
    for (;;) {
        const std::size_t n = mp::sys::read_full(fd, buf, sizeof buf);
        s.append(buf, n);
        if (n < sizeof buf) return s;
    }
}

// A user type that carries a descriptor with no mp::detail in sight.
struct LogSink {
    std::string prefix;
    mp::FileDescriptor fd;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(prefix, fd);
    }
};

void write_to(mp::FileDescriptor fd, std::string text) {
    mp::sys::write_all(fd.get(), text.data(), text.size());
}

void write_sink(LogSink sink) {
    const std::string line = sink.prefix + "hello";
    mp::sys::write_all(sink.fd.get(), line.data(), line.size());
}

void receive_and_write(mp::Connection c) {
    mp::FileDescriptor fd = mp::reduction::recv_handle(c);
    mp::sys::write_all(fd.get(), "via recv_handle", 15);
}

class FileDescriptorP : public mp::test::StartMethodTest {};

TEST_P(FileDescriptorP, PassedToAChildAsAnArgument) {
    auto p = mp::sys::make_pipe();
    mp::FileDescriptor w(p.write.release());
    auto child = start(write_to, w, std::string("from the child"));
    w.close();  // the child holds its own copy
    join_ok(child);
    EXPECT_EQ(read_all(p.read.get()), "from the child");
}

TEST_P(FileDescriptorP, InsideAUserType) {
    auto p = mp::sys::make_pipe();
    LogSink sink{"[sink] ", mp::FileDescriptor(p.write.release())};
    auto child = start(write_sink, sink);
    sink.fd.close();
    join_ok(child);
    EXPECT_EQ(read_all(p.read.get()), "[sink] hello");
}

TEST_P(FileDescriptorP, SendHandleRecvHandle) {
    auto p = mp::sys::make_pipe();
    auto [here, there] = mp::Pipe();
    auto child = start(receive_and_write, there);
    mp::reduction::send_handle(here, p.write.get(), *child.pid());
    p.write.reset();  // send_handle sent a duplicate: ours is still ours to close
    join_ok(child);
    EXPECT_EQ(read_all(p.read.get()), "via recv_handle");
}

// The child makes a Connection of a socket it was given as a descriptor, and answers on it.
void answer_on_socket(mp::FileDescriptor sock) {
    mp::Connection c(sock.release());  // takes ownership
    c.send(c.recv<std::string>() + " pong");
}

TEST_P(FileDescriptorP, ConnectionFromASocketpairEndInAChild) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mp::Connection here(sv[0]);
    mp::FileDescriptor there(sv[1]);
    auto child = start(answer_on_socket, there);
    there.close();  // the child has its own copy
    here.send(std::string("ping"));
    EXPECT_EQ(here.recv<std::string>(), "ping pong");
    join_ok(child);
    EXPECT_THROW(static_cast<void>(here.recv_bytes()), mp::EOFError);  // the child's end closed
}

INSTANTIATE_TEST_SUITE_P(StartMethods, FileDescriptorP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

TEST(FileDescriptor, SharesAndReleases) {
    auto p = mp::sys::make_pipe();
    mp::FileDescriptor a(p.write.release());
    mp::FileDescriptor b = a;  // a copy shares the descriptor
    EXPECT_EQ(a.get(), b.get());
    const int raw = b.release();  // ownership leaves every copy
    EXPECT_FALSE(a);
    EXPECT_GE(raw, 0);
    ::close(raw);
    EXPECT_THROW(mp::FileDescriptor(-1), mp::UsageError);
    EXPECT_THROW(static_cast<void>(mp::dumps(mp::FileDescriptor())), mp::UsageError);
}

TEST(FileDescriptor, ConnectionFromAnExistingSocket) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mp::Connection a(sv[0]), b(sv[1]);  // each takes ownership
    a.send(std::string("over a socketpair made elsewhere"));
    EXPECT_EQ(b.recv<std::string>(), "over a socketpair made elsewhere");
}

}  // namespace
