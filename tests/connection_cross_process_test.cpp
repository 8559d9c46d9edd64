// Connection across processes made by mp::Process, once per start method: typed values, receiving
// into a buffer, poll, a peer's death (also in the middle of a frame), large payloads, connections
// sent over connections, wait on another process, and exceptions shipped through a Pipe. The
// single-process cases are in connection_test.cpp.
#include "multiproc/connection.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <vector>

#include "helpers/connection_frames.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // raw frames, Sample

// ---------------------------------------------------------------------------------------------
// Across processes made by mp::Process, under every start method available. Child targets are
// plain functions taking shippable arguments, so they run under spawn and forkserver too. A
// failed check in a child throws, which makes its exit code 1.

void require(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("child check failed: ") + what);
}

class CrossProcess : public mp::test::StartMethodTest {};

INSTANTIATE_TEST_SUITE_P(StartMethods, CrossProcess,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

int join_exitcode(mp::Process& p) {
    p.join();
    return p.exitcode().value_or(-1000);
}

void echo_typed_values(mp::Connection c) {
    auto s = c.recv<std::string>();
    auto v = c.recv<std::vector<int>>();
    auto m = c.recv<std::map<std::string, std::vector<double>>>();
    auto u = c.recv<Sample>();
    c.send(s + "!");
    c.send(std::accumulate(v.begin(), v.end(), 0));
    c.send(m.at("pi"));
    u.id += 1;
    u.tags["seen"] = 1;
    c.send(u);
}

TEST_P(CrossProcess, TypedValues) {
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(echo_typed_values, b);
    p.start();
    b.close();
    a.send(std::string("hello"));
    a.send(std::vector<int>{1, 2, 3, 4});
    a.send(std::map<std::string, std::vector<double>>{{"pi", {3.14, 3.1416}}, {"e", {2.71}}});
    Sample s{1, "sample", {0.5, 1.5}, {{"k", 2}}};
    a.send(s);
    EXPECT_EQ(a.recv<std::string>(), "hello!");
    EXPECT_EQ(a.recv<int>(), 10);
    EXPECT_EQ(a.recv<std::vector<double>>(), (std::vector<double>{3.14, 3.1416}));
    Sample back = a.recv<Sample>();
    s.id = 2;
    s.tags["seen"] = 1;
    EXPECT_EQ(back, s);
    EXPECT_EQ(join_exitcode(p), 0);
}

void send_three_messages(mp::Connection c) {
    c.send_bytes("0123456789");
    c.send_bytes("fits");
    c.send_bytes("");
}

TEST_P(CrossProcess, RecvBytesIntoAndBufferTooShort) {
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(send_three_messages, a);
    p.start();
    a.close();
    std::vector<std::byte> buf(12, std::byte{'.'});
    try {
        (void)b.recv_bytes_into(buf, 4);
        ADD_FAILURE() << "a 10-byte message fitted into 8 bytes";
    } catch (const mp::BufferTooShort& e) {
        EXPECT_EQ(string_of(e.message()), "0123456789");  // the whole message
    }
    EXPECT_EQ(string_of(buf), "............");  // nothing was written into the buffer
    EXPECT_EQ(b.recv_bytes_into(buf, 4), 4u);   // the stream is still in step
    EXPECT_EQ(string_of(buf), "....fits....");
    EXPECT_EQ(b.recv_bytes_into(buf, 12), 0u);
    EXPECT_THROW((void)b.recv_bytes_into(buf, 13), mp::UsageError);
    EXPECT_EQ(join_exitcode(p), 0);
    EXPECT_THROW((void)b.recv_bytes_into(buf), mp::EOFError);
}

void send_slowly(mp::Connection c) {
    std::this_thread::sleep_for(100ms);
    c.send(1);
    std::this_thread::sleep_for(100ms);
    c.send(2);
}

TEST_P(CrossProcess, PollZeroFiniteAndUntilDataArrives) {
    auto [a, b] = mp::Pipe();
    EXPECT_FALSE(a.poll());
    EXPECT_FALSE(a.poll(0s));
    EXPECT_FALSE(a.poll(30ms));
    mp::Process p = ctx().Process(send_slowly, b);
    p.start();
    b.close();
    EXPECT_TRUE(a.poll(mp::forever));
    EXPECT_EQ(a.recv<int>(), 1);
    EXPECT_TRUE(a.poll(30s));
    EXPECT_EQ(a.recv<int>(), 2);
    EXPECT_EQ(join_exitcode(p), 0);
    EXPECT_TRUE(a.poll());  // end of file counts as ready, as in Python
    EXPECT_THROW((void)a.recv<int>(), mp::EOFError);
}

void say_last_words_and_die(mp::Connection c) {
    c.send(std::string("last words"));
    ::kill(::getpid(), SIGKILL);
}

TEST_P(CrossProcess, PeerProcessDeathIsEOFError) {
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(say_last_words_and_die, b);
    p.start();
    b.close();
    EXPECT_EQ(a.recv<std::string>(), "last words");
    try {
        (void)a.recv<std::string>();
        ADD_FAILURE() << "no EOFError";
    } catch (const mp::EOFError& e) {
        EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(join_exitcode(p), -SIGKILL);
}

void die_in_the_middle_of_a_frame(mp::Connection c) {
    write_be32(c, 100);
    write_raw(c, "0123456789", 10);
    ::kill(::getpid(), SIGKILL);
}

TEST_P(CrossProcess, SenderDyingMidFrameIsEOFErrorNamingTheCounts) {
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(die_in_the_middle_of_a_frame, a);
    p.start();
    a.close();
    std::vector<std::byte> buf(200);
    try {
        (void)b.recv_bytes_into(buf);
        ADD_FAILURE();
    } catch (const mp::EOFError& e) {
        EXPECT_NE(std::string(e.what()).find("10 of 100 bytes"), std::string::npos) << e.what();
    }
    EXPECT_EQ(join_exitcode(p), -SIGKILL);
}

void echo_large(mp::Connection c) {
    auto bytes = c.recv_bytes();  // raw path
    c.send_bytes(bytes);
    auto v = c.recv<std::vector<std::uint64_t>>();  // codec path
    c.send(v);
}

TEST_P(CrossProcess, LargePayloadRoundTripsIntact) {
    constexpr std::size_t kSize = 64u << 20;
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(echo_large, b);
    p.start();
    b.close();
    std::vector<std::byte> payload(kSize);
    for (std::size_t i = 0; i < kSize; ++i)
        payload[i] = static_cast<std::byte>((i * 2654435761u) >> 13);
    a.send_bytes(payload);
    EXPECT_TRUE(a.recv_bytes() == payload);
    std::vector<std::uint64_t> words(kSize / 8);
    std::iota(words.begin(), words.end(), 1);
    a.send(words);
    EXPECT_TRUE(a.recv<std::vector<std::uint64_t>>() == words);
    EXPECT_EQ(join_exitcode(p), 0);
}

void use_passed_connections(mp::Connection c) {
    auto passed = c.recv<mp::Connection>();
    auto [writer, note] = c.recv<std::pair<mp::Connection, std::string>>();
    require(passed.readable() && passed.writable(), "duplex end arrived duplex");
    require(!writer.readable() && writer.writable(), "simplex end arrived write-only");
    require(passed.fileno() != c.fileno(), "a new descriptor");
    passed.send(std::string("via the passed end: ") + passed.recv<std::string>());
    writer.send(note);
}

TEST_P(CrossProcess, ConnectionSentOverConnectionWorksOnTheOtherSide) {
    auto [a, b] = mp::Pipe();
    auto [x, y] = mp::Pipe();
    auto [r, w] = mp::Pipe(false);
    mp::Process p = ctx().Process(use_passed_connections, b);
    p.start();
    b.close();
    a.send(y);
    a.send(std::make_pair(w, std::string("simplex passed too")));
    y.close();  // from here on only the child's received descriptors reach x and r
    w.close();
    x.send(std::string("ping"));
    EXPECT_EQ(x.recv<std::string>(), "via the passed end: ping");
    EXPECT_EQ(r.recv<std::string>(), "simplex passed too");
    EXPECT_EQ(join_exitcode(p), 0);
    EXPECT_THROW((void)x.recv<int>(), mp::EOFError);  // the child's copy died with it
    EXPECT_THROW((void)r.recv<int>(), mp::EOFError);
}

void send_late(mp::Connection c) {
    std::this_thread::sleep_for(100ms);
    c.send(std::string("late"));
}

TEST_P(CrossProcess, WaitBlocksUntilAnotherProcessSendsAndSeesItsSentinel) {
    auto [a, b] = mp::Pipe();
    auto [c, d] = mp::Pipe();
    mp::Process p = ctx().Process(send_late, d);
    p.start();
    d.close();
    EXPECT_EQ(mp::wait({a, c}), (std::vector<std::size_t>{1}));
    EXPECT_EQ(c.recv<std::string>(), "late");
    EXPECT_EQ(mp::wait({a, p}, 30s), (std::vector<std::size_t>{1}));  // the sentinel fires
    EXPECT_EQ(join_exitcode(p), 0);
    EXPECT_EQ(mp::wait({a, c, p}, 10s), (std::vector<std::size_t>{1, 2}));  // c hung up too
}

// ---------------------------------------------------------------------------------------------
// The exception transport, through a Pipe, across processes

namespace custom {
struct BadThing : std::exception {
    const char* what() const noexcept override { return "a bad thing happened"; }
};
}  // namespace custom

template <class F>
void ship(mp::Connection& c, F&& thrower) {
    try {
        thrower();
    } catch (...) {
        c.send(std::current_exception());
    }
}

void throw_and_ship(mp::Connection c) {
    ship(c, [] { throw std::invalid_argument("bad argument 7"); });
    ship(c, [] { throw std::out_of_range("index 9 out of range"); });
    ship(c, [] { throw std::system_error(ENOENT, std::system_category(), "open /nope"); });
    ship(c, [] { throw custom::BadThing(); });
    ship(c, [] { throw mp::TimeoutError("timed out after 1s"); });
    ship(c, [] { throw std::runtime_error("plain runtime"); });
    c.send(std::exception_ptr{});
}

TEST_P(CrossProcess, ExceptionsComeBackAsTheirStandardTypes) {
    auto [a, b] = mp::Pipe();
    mp::Process p = ctx().Process(throw_and_ship, b);
    p.start();
    b.close();

    auto next = [conn = a]() mutable { return conn.recv<std::exception_ptr>(); };
    auto ex = next();
    ASSERT_TRUE(ex);
    try {
        std::rethrow_exception(ex);
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(typeid(e), typeid(std::invalid_argument));
        EXPECT_STREQ(e.what(), "bad argument 7");
    }
    try {
        std::rethrow_exception(next());
    } catch (const std::out_of_range& e) {
        EXPECT_EQ(typeid(e), typeid(std::out_of_range));
        EXPECT_STREQ(e.what(), "index 9 out of range");
    }
    try {
        std::rethrow_exception(next());
    } catch (const std::system_error& e) {
        EXPECT_EQ(typeid(e), typeid(std::system_error));
        EXPECT_EQ(e.code(), std::error_code(ENOENT, std::system_category()));
        // The rebuilt system_error appends the code's message again; the remote text is whole.
        const std::string original =
            std::system_error(ENOENT, std::system_category(), "open /nope").what();
        EXPECT_NE(std::string(e.what()).find(original), std::string::npos) << e.what();
    }
    try {
        std::rethrow_exception(next());
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("custom::BadThing"), std::string::npos) << e.type_name();
        EXPECT_EQ(e.remote_what(), "a bad thing happened");
    }
    try {
        std::rethrow_exception(next());
    } catch (const mp::TimeoutError& e) {
        EXPECT_EQ(typeid(e), typeid(mp::TimeoutError));
        EXPECT_STREQ(e.what(), "timed out after 1s");
    }
    try {
        std::rethrow_exception(next());
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(typeid(e), typeid(std::runtime_error));
        EXPECT_STREQ(e.what(), "plain runtime");
    }
    EXPECT_FALSE(next());
    EXPECT_EQ(join_exitcode(p), 0);
}

}  // namespace
