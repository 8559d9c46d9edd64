// Pipe, Connection and wait in one process: directions, misuse and sharing, the wire format,
// hostile and broken frames (some from a forked child with limited memory), Python's
// multiprocessing.connection on the other end, and wait. Across processes made by mp::Process:
// connection_cross_process_test.cpp.
#include "multiproc/connection.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <vector>

#include "helpers/connection_frames.hpp"
#include "helpers/raw_child.hpp"
#include "helpers/sanitizer.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;

using namespace mp::test;  // raw frames, Sample

constexpr bool kAsan = mp::test::asan;

// A bare forked child running fn (0 for success, another code for a failed check), for the one
// test that must shape the child's own memory limits before it receives; everything else across
// processes runs in mp::Process children (connection_cross_process_test.cpp). Killed and reaped
// by the destructor if the test did not join it, so no test leaves a child behind even when an
// assertion fails first.
class Child {
public:
    template <class F>
    explicit Child(F&& fn) {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid < 0) throw std::system_error(errno, std::system_category(), "fork");
        if (pid == 0) {
            int code = 99;
            try {
                code = fn();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child: uncaught %s\n", e.what());
                code = 98;
            } catch (...) {
                code = 97;
            }
            std::fflush(nullptr);
            ::_exit(code);
        }
        child_ = mp::test::RawChild(pid);
    }
    /// The exit code, or -signal (as Python's exitcode).
    int join() { return child_.join(); }
    pid_t pid() const { return child_.pid(); }

private:
    mp::test::RawChild child_;
};

std::vector<std::byte> bytes_of(std::string_view s) {
    auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}
void write_be64(const mp::Connection& c, std::uint64_t v) {
    unsigned char b[8];
    for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<unsigned char>(v);
    write_raw(c, b, 8);
}

// ---------------------------------------------------------------------------------------------
// Directions, misuse, sharing

TEST(Connection, DuplexCarriesBothWays) {
    auto [a, b] = mp::Pipe();
    EXPECT_TRUE(a.readable() && a.writable() && b.readable() && b.writable());
    a.send(std::string("to b"));
    b.send(42);
    EXPECT_EQ(b.recv<std::string>(), "to b");
    EXPECT_EQ(a.recv<int>(), 42);
    EXPECT_NE(a.fileno(), b.fileno());
}

TEST(Connection, SimplexFirstEndReceivesSecondSends) {
    auto [r, w] = mp::Pipe(false);
    EXPECT_TRUE(r.readable());
    EXPECT_FALSE(r.writable());
    EXPECT_FALSE(w.readable());
    EXPECT_TRUE(w.writable());
    w.send_bytes("one way");
    EXPECT_EQ(string_of(r.recv_bytes()), "one way");
    EXPECT_THROW(r.send(1), mp::UsageError);
    EXPECT_THROW(r.send_bytes("x"), mp::UsageError);
    EXPECT_THROW((void)w.recv<int>(), mp::UsageError);
    EXPECT_THROW((void)w.recv_bytes(), mp::UsageError);
    EXPECT_THROW((void)w.poll(), mp::UsageError);
    EXPECT_FALSE(r.poll());  // the shut-down direction does not look readable
    try {
        r.send(1);
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
    }
}

TEST(Connection, UseAfterCloseIsUsageError) {
    auto [a, b] = mp::Pipe();
    a.close();
    EXPECT_TRUE(a.closed());
    EXPECT_FALSE(a.readable());
    EXPECT_FALSE(a.writable());
    EXPECT_THROW(a.send(1), mp::UsageError);
    EXPECT_THROW((void)a.recv<int>(), mp::UsageError);
    EXPECT_THROW((void)a.poll(), mp::UsageError);
    EXPECT_THROW((void)a.fileno(), mp::UsageError);
    a.close();  // twice is harmless
    mp::Connection none;
    EXPECT_TRUE(none.closed());
    EXPECT_THROW(none.send_bytes("x"), mp::UsageError);
    EXPECT_THROW((void)mp::dumps(none), mp::UsageError);
}

TEST(Connection, CopiesShareOneConnection) {
    auto [a, b] = mp::Pipe();
    mp::Connection a2 = a;
    EXPECT_TRUE(a2 == a);
    EXPECT_EQ(a2.fileno(), a.fileno());
    a2.send(std::string("from the copy"));
    EXPECT_EQ(b.recv<std::string>(), "from the copy");
    b.send(7);
    EXPECT_EQ(a.recv<int>(), 7);
    a.close();
    EXPECT_TRUE(a2.closed());
    EXPECT_THROW(a2.send(1), mp::UsageError);
    EXPECT_THROW((void)b.recv_bytes(), mp::EOFError);  // the last copy closed: peer sees EOF
}

// ---------------------------------------------------------------------------------------------
// Values and bytes across processes

TEST(Connection, RecvOfTheWrongTypeIsDecodeError) {
    auto [a, b] = mp::Pipe();
    a.send(std::string("not an int"));
    EXPECT_THROW((void)b.recv<int>(), mp::DecodeError);
    a.send(std::uint16_t{5});
    EXPECT_THROW((void)b.recv<std::uint64_t>(), mp::DecodeError);
    a.send(3);  // the stream stays in step after a decode failure
    EXPECT_EQ(b.recv<int>(), 3);
}

TEST(Connection, SendBytesOffsetAndSize) {
    auto [a, b] = mp::Pipe();
    const auto buf = bytes_of("abcdefgh");
    a.send_bytes(buf, 2, 3);
    EXPECT_EQ(string_of(b.recv_bytes()), "cde");
    a.send_bytes(buf, 5);
    EXPECT_EQ(string_of(b.recv_bytes()), "fgh");
    a.send_bytes(buf, 8);
    EXPECT_TRUE(b.recv_bytes().empty());
    a.send_bytes(std::string("string"), 3);
    EXPECT_EQ(string_of(b.recv_bytes()), "ing");
    const std::vector<std::uint32_t> ints{1, 2, 3};
    a.send_bytes(ints, 4, 4);  // offsets count bytes, as Python's
    auto got = b.recv_bytes();
    ASSERT_EQ(got.size(), 4u);
    std::uint32_t two = 0;
    std::memcpy(&two, got.data(), 4);
    EXPECT_EQ(two, 2u);
    EXPECT_THROW(a.send_bytes(buf, 9), mp::UsageError);
    EXPECT_THROW(a.send_bytes(buf, 6, 3), mp::UsageError);
    EXPECT_FALSE(b.poll());  // nothing was sent by the failed calls
}

TEST(Connection, PeerCloseIsEOFErrorBothWays) {
    auto [a, b] = mp::Pipe();
    b.send(5);
    b.close();
    EXPECT_EQ(a.recv<int>(), 5);  // what was sent before the close still arrives
    EXPECT_THROW((void)a.recv<int>(), mp::EOFError);
    EXPECT_THROW((void)a.recv_bytes(), mp::EOFError);
    EXPECT_THROW(a.send(1), mp::EOFError);  // and no SIGPIPE kills us
}

TEST(Connection, ConnectionWithoutItsDescriptorIsDecodeError) {
    auto [a, b] = mp::Pipe();
    auto bytes = mp::dumps(a);  // dumps carries no descriptors
    EXPECT_THROW((void)mp::loads<mp::Connection>(bytes), mp::DecodeError);
    b.send_bytes(bytes);  // raw bytes that claim a descriptor: none arrives
    EXPECT_THROW((void)a.recv<mp::Connection>(), mp::DecodeError);
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken frames

// Current virtual memory size of this process, from /proc.
std::size_t vm_size_bytes() {
    std::ifstream f("/proc/self/status");
    std::string key;
    while (f >> key) {
        if (key == "VmSize:") {
            std::size_t kb = 0;
            f >> kb;
            return kb * 1024;
        }
        f.ignore(1 << 12, '\n');
    }
    return 0;
}

TEST(Connection, LyingHeaderAllocatesNothingTheSenderDidNotSend) {
    if (kAsan) GTEST_SKIP() << "RLIMIT_AS cannot be used under AddressSanitizer's shadow memory";
    constexpr std::uint32_t kClaim = 1u << 30;
    auto [a1, b1] = mp::Pipe();
    auto [a2, b2] = mp::Pipe();
    Child receiver([a1 = a1, b1 = b1, a2 = a2, b2 = b2]() mutable {
        b1.close();  // the liar's ends belong to the parent alone
        b2.close();
        // Room for a few MiB more, far less than the gigabyte the headers will announce.
        const std::size_t room = vm_size_bytes() + (32u << 20);
        const rlimit lim{room, room};
        if (::setrlimit(RLIMIT_AS, &lim) != 0) return 2;
        // The control: under this limit a gigabyte really cannot be had.
        void* p =
            ::mmap(nullptr, kClaim, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) return 3;
        for (int round = 0; round < 2; ++round) {
            try {
                if (round == 0) (void)a1.recv_bytes();
                else (void)a2.recv<std::vector<char>>();
                return 4;
            } catch (const mp::EOFError& e) {
                if (!std::strstr(e.what(), "10 of 1073741824 bytes")) {
                    std::fprintf(stderr, "unexpected message: %s\n", e.what());
                    return 5;
                }
            } catch (const std::bad_alloc&) {
                return 6;
            }
        }
        return 0;
    });
    a1.close();
    a2.close();
    write_be32(b1, kClaim);
    write_raw(b1, "0123456789", 10);
    b1.close();
    write_be32(b2, kClaim);
    write_raw(b2, "0123456789", 10);
    b2.close();
    EXPECT_EQ(receiver.join(), 0);
}

TEST(Connection, LyingLongFormHeaderEndsInEOFError) {
    auto [a, b] = mp::Pipe();
    write_be32(a, 0xffffffffu);
    write_be64(a, std::uint64_t{1} << 62);  // four exbibytes announced
    write_raw(a, "tiny", 4);
    a.close();
    try {
        (void)b.recv_bytes();
        ADD_FAILURE() << "no error";
    } catch (const mp::EOFError& e) {
        EXPECT_NE(std::string(e.what()).find("4 of 4611686018427387904 bytes"), std::string::npos)
            << e.what();
    }
}

TEST(Connection, NegativeLengthIsAClearErrorAndClosesTheConnection) {
    auto [a, b] = mp::Pipe();
    write_be32(a, static_cast<std::uint32_t>(-5));
    try {
        (void)b.recv_bytes();
        ADD_FAILURE() << "no error";
    } catch (const mp::ProcessError& e) {
        EXPECT_NE(std::string(e.what()).find("corrupt message header"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(b.closed());
}

TEST(Connection, TruncatedFramesAreEOFErrorNamingTheCounts) {
    {
        auto [a, b] = mp::Pipe();
        write_raw(a, "\0\0", 2);
        a.close();
        try {
            (void)b.recv_bytes();
            ADD_FAILURE();
        } catch (const mp::EOFError& e) {
            EXPECT_NE(std::string(e.what()).find("2 of 4 bytes"), std::string::npos) << e.what();
        }
    }
    {
        auto [a, b] = mp::Pipe();
        write_be32(a, 0xffffffffu);
        write_raw(a, "\0\0\0", 3);
        a.close();
        try {
            (void)b.recv_bytes();
            ADD_FAILURE();
        } catch (const mp::EOFError& e) {
            EXPECT_NE(std::string(e.what()).find("7 of 12 bytes"), std::string::npos) << e.what();
        }
    }
}

TEST(Connection, RecvBytesMaxlengthIsEnforcedBeforeReading) {
    auto [a, b] = mp::Pipe();
    a.send_bytes("exactly ten");
    a.send_bytes(std::string(100, 'x'));
    EXPECT_EQ(b.recv_bytes(11).size(), 11u);  // a limit equal to the size is fine
    try {
        (void)b.recv_bytes(10);
        ADD_FAILURE() << "the limit was not enforced";
    } catch (const mp::ProcessError& e) {
        EXPECT_NE(std::string(e.what()).find("bad message length"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(b.closed());  // the stream position is lost
    EXPECT_THROW((void)b.recv_bytes(), mp::UsageError);
}

TEST(Connection, LongFormHeaderIsReceived) {
    auto [a, b] = mp::Pipe();
    write_be32(a, 0xffffffffu);  // Python's pre-header for payloads over 2 GiB...
    write_be64(a, 5);            // ...is valid for any length
    write_raw(a, "hello", 5);
    EXPECT_EQ(string_of(b.recv_bytes()), "hello");
    auto typed = mp::dumps(std::string("typed"));
    write_be32(a, 0xffffffffu);
    write_be64(a, typed.size());
    write_raw(a, typed.data(), typed.size());
    EXPECT_EQ(b.recv<std::string>(), "typed");
}

// ---------------------------------------------------------------------------------------------
// Python's multiprocessing.connection on the other end

class PythonPeer {
public:
    explicit PythonPeer(const mp::Connection& theirs) {
        // Hand the socket to the child as descriptor 3 (dup2 in the child clears close-on-exec).
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, theirs.fileno(), 3);
        const std::string script =
            std::string(MULTIPROC_SOURCE_DIR) + "/tests/helpers/py_conn_peer.py";
        char* argv[] = {const_cast<char*>("python3"), const_cast<char*>(script.c_str()),
                        const_cast<char*>("3"), nullptr};
        pid_t pid = -1;
        int err = ::posix_spawnp(&pid, "python3", &fa, nullptr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (err) throw std::system_error(err, std::system_category(), "posix_spawnp python3");
        child_ = mp::test::RawChild(pid);
    }
    /// The exit code, or -signal.
    int join() { return child_.join(); }

private:
    mp::test::RawChild child_;
};

TEST(Connection, PythonPeerUnderstandsOurFramesAndWeUnderstandItsFrames) {
    auto [ours, theirs] = mp::Pipe();
    if (theirs.fileno() == 3) {  // dup2 onto itself would keep close-on-exec
        mp::Connection moved(mp::detail::UniqueFd(::fcntl(theirs.fileno(), F_DUPFD_CLOEXEC, 10)));
        theirs.close();
        theirs = moved;
    }
    PythonPeer peer(theirs);
    theirs.close();
    // Python writes header and payload in one write up to 16384 bytes, in two above.
    for (std::size_t n : {0u, 1u, 8u, 100u, 16383u, 16384u, 16385u, 70000u, 1u << 20, 5u << 20}) {
        std::vector<std::byte> msg(n);
        for (std::size_t i = 0; i < n; ++i) msg[i] = static_cast<std::byte>(i * 7 + n);
        ours.send_bytes(msg);
        auto back = ours.recv_bytes();
        EXPECT_TRUE(back == msg) << "size " << n << " came back as " << back.size() << " bytes";
    }
    // A long-form frame (the form Python uses above 2 GiB) is accepted by Python too.
    write_be32(ours, 0xffffffffu);
    write_be64(ours, 6);
    write_raw(ours, "python", 6);
    EXPECT_EQ(string_of(ours.recv_bytes()), "python");
    // Typed values are our codec inside Python's frame: Python relays them untouched.
    Sample s{3, "through python", {1.0}, {{"a", 1}}};
    ours.send(s);
    EXPECT_EQ(ours.recv<Sample>(), s);
    ours.send_bytes("__quit__");
    EXPECT_EQ(peer.join(), 0);
    EXPECT_THROW((void)ours.recv_bytes(), mp::EOFError);
}

// ---------------------------------------------------------------------------------------------
// wait

struct FakeProcess {
    int fd;
    int sentinel() const { return fd; }
};

TEST(Wait, TimesOutWhenNothingIsReady) {
    auto [a, b] = mp::Pipe();
    auto [c, d] = mp::Pipe();
    EXPECT_TRUE(mp::wait({a, c}, 0s).empty());
    EXPECT_TRUE(mp::wait({a, c}, 50ms).empty());
}

TEST(Wait, ReportsTheIndicesOfReadyObjects) {
    auto [a, b] = mp::Pipe();
    auto [c, d] = mp::Pipe();
    auto [e, f] = mp::Pipe(false);
    int raw[2];
    ASSERT_EQ(::pipe2(raw, O_CLOEXEC), 0);
    mp::detail::UniqueFd raw_r(raw[0]), raw_w(raw[1]);
    FakeProcess proc{raw[0]};

    b.send(1);
    f.send(2);
    std::vector<mp::Waitable> objects{a, c, e, raw_r.get(), proc};
    EXPECT_EQ(mp::wait(objects, 1s), (std::vector<std::size_t>{0, 2}));
    ASSERT_EQ(::write(raw_w.get(), "x", 1), 1);
    EXPECT_EQ(mp::wait(objects, 1s), (std::vector<std::size_t>{0, 2, 3, 4}));
    EXPECT_EQ(a.recv<int>(), 1);
    EXPECT_EQ(e.recv<int>(), 2);
    char ch;
    ASSERT_EQ(::read(raw_r.get(), &ch, 1), 1);
    EXPECT_TRUE(mp::wait(objects, 0s).empty());
    d.close();  // a hung-up peer is ready too (recv will raise EOFError)
    EXPECT_EQ(mp::wait(objects, 1s), (std::vector<std::size_t>{1}));
}

TEST(Wait, ClosedConnectionOrBadDescriptorIsAnError) {
    auto [a, b] = mp::Pipe();
    mp::Waitable w = a;
    a.close();
    EXPECT_THROW((void)mp::wait({w}, 0s), mp::UsageError);
    int raw[2];
    ASSERT_EQ(::pipe2(raw, O_CLOEXEC), 0);
    ::close(raw[0]);
    ::close(raw[1]);
    EXPECT_THROW((void)mp::wait({raw[0]}, 0s), std::system_error);
}

}  // namespace
