// Listener, Client and Address: every address kind, Python's authentication handshake in both
// directions and both forms, hostile and stalled peers, and real Python peers (Debian's
// python3 and the newer interpreters the machine has) on the other end.
#include "multiproc/listener.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "auth.hpp"
#include "helpers/python_peer.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"
#include "multiproc/signals.hpp"
#include "multiproc/synchronize.hpp"
#include "sys/io.hpp"

namespace {

using namespace std::chrono_literals;

std::string temp_path(const std::string& stem) {
    return (std::filesystem::temp_directory_path() /
            (stem + "-" + std::to_string(::getpid()) + "-" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
        .string();
}

std::string text(const std::vector<std::byte>& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::vector<std::byte> pattern(std::size_t n) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 31 + n);
    return v;
}

// --- Address ------------------------------------------------------------------------------------

TEST(Address, ParsesEveryKind) {
    EXPECT_EQ(mp::Address("localhost:6000"), mp::Address::tcp("localhost", 6000));
    EXPECT_EQ(mp::Address("[::1]:0"), mp::Address::tcp("::1", 0));
    EXPECT_EQ(mp::Address("@name"), mp::Address::abstract_socket("name"));
    EXPECT_EQ(mp::Address(std::string("\0name", 5)), mp::Address::abstract_socket("name"));
    EXPECT_EQ(mp::Address("/tmp/a:b/sock"), mp::Address::unix_socket("/tmp/a:b/sock"));
    EXPECT_EQ(mp::Address("sock"), mp::Address::unix_socket("sock"));
    EXPECT_EQ(mp::Address("host:99999"), mp::Address::unix_socket("host:99999"));  // not a port
    EXPECT_EQ(mp::Address::tcp("::1", 80).to_string(), "[::1]:80");
    EXPECT_EQ(mp::Address::abstract_socket("x").to_string(), "@x");
    EXPECT_THROW(mp::Address(""), mp::UsageError);
}

// --- one process --------------------------------------------------------------------------------

TEST(Listener, UnixPathIsPrivateAndRemovedOnClose) {
    const std::string path = temp_path("mp-listener");
    {
        mp::Listener l(mp::Address::unix_socket(path), 4, "key");
        struct stat st {};
        ASSERT_EQ(::lstat(path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        EXPECT_EQ(l.address(), mp::Address::unix_socket(path));
        // A second listener on the same path is EADDRINUSE and leaves the first one alone.
        try {
            mp::Listener again(mp::Address::unix_socket(path));
            ADD_FAILURE() << "two listeners on one path";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), EADDRINUSE);
        }
        std::thread t([&] { mp::Client(path, "key").send(std::string("still there")); });
        EXPECT_EQ(l.accept().recv<std::string>(), "still there");
        t.join();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    // Nothing is left in the directory either (the private bind directory is gone).
    for (const auto& e :
         std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
        EXPECT_EQ(e.path().filename().string().rfind(".mp-listener-", 0), std::string::npos)
            << e.path();
}

TEST(Listener, TcpPortZeroPicksAPortOnIpv4AndIpv6) {
    for (const char* host : {"127.0.0.1", "::1"}) {
        mp::Listener l(mp::Address::tcp(host, 0), 4, "k");
        EXPECT_EQ(l.address().family(), mp::Address::Family::tcp);
        EXPECT_NE(l.address().port(), 0);
        EXPECT_EQ(l.address().host(), host);
        std::thread t([addr = l.address()] {
            mp::Connection c = mp::Client(addr, "k");
            c.send(std::map<std::string, int>{{"port", addr.port()}});
            EXPECT_EQ(c.recv<std::string>(), "ok");
        });
        mp::Connection c = l.accept();
        EXPECT_EQ((c.recv<std::map<std::string, int>>()),
                  (std::map<std::string, int>{{"port", l.address().port()}}));
        c.send(std::string("ok"));
        ASSERT_TRUE(l.last_accepted());
        EXPECT_EQ(l.last_accepted()->family(), mp::Address::Family::tcp);
        EXPECT_EQ(l.last_accepted()->host(), host);
        t.join();
    }
}

TEST(Listener, AbstractNameLeavesNoFile) {
    const std::string name = "mp-test-" + std::to_string(::getpid());
    mp::Listener l(mp::Address::abstract_socket(name), 4, "");  // an empty key is a real key
    std::thread t([&] { mp::Client("@" + name, "").send_bytes("abstract"); });
    EXPECT_EQ(text(l.accept().recv_bytes()), "abstract");
    t.join();
    EXPECT_FALSE(std::filesystem::exists(name));
}

TEST(Listener, WaitSeesAPendingClient) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
    EXPECT_TRUE(mp::wait({l}, 0ms).empty());
    mp::Connection c = mp::Client(l.address());
    EXPECT_EQ(mp::wait({l}, 5s), (std::vector<std::size_t>{0}));
    mp::Connection s = l.accept();
    s.send_bytes("x");
    EXPECT_EQ(text(c.recv_bytes()), "x");
}

TEST(Listener, WrongKeyFailsOnBothSidesAndTheListenerGoesOn) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "right");
    for (const char* key : {"wrong", ""}) {
        std::thread t([&] { EXPECT_THROW(mp::Client(l.address(), key), mp::AuthenticationError); });
        EXPECT_THROW(l.accept(), mp::AuthenticationError);
        t.join();
    }
    std::thread t([&] { mp::Client(l.address(), "right").send_bytes("in"); });
    EXPECT_EQ(text(l.accept().recv_bytes()), "in");
    t.join();
}

TEST(Listener, BothChallengeFormsEitherWay) {
    const mp::AuthOptions legacy{mp::AuthDigest::legacy_md5};
    for (auto [server, client] :
         {std::pair{legacy, mp::AuthOptions{}}, std::pair{mp::AuthOptions{}, legacy},
          std::pair{legacy, legacy}}) {
        mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "key", server);
        std::thread t([&, c = client] { mp::Client(l.address(), "key", c).send_bytes("hi"); });
        EXPECT_EQ(text(l.accept().recv_bytes()), "hi");
        t.join();
        std::thread bad([&, c = client] {
            EXPECT_THROW(mp::Client(l.address(), "other", c), mp::AuthenticationError);
        });
        EXPECT_THROW(l.accept(), mp::AuthenticationError);
        bad.join();
    }
}

TEST(Listener, APeerMaySendOnlySmallMessagesBeforeAuthentication) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "key");
    std::thread t([&] {
        mp::Connection raw = mp::Client(l.address());  // no key: does not take part
        static_cast<void>(raw.recv_bytes());           // the challenge
        raw.send_bytes(std::vector<std::byte>(1000));  // instead of a 16-64 byte response
        EXPECT_THROW(static_cast<void>(raw.recv_bytes()),
                     mp::EOFError);  // closed, nothing else read
    });
    try {
        static_cast<void>(l.accept());
        ADD_FAILURE() << "a 1000-byte response was accepted";
    } catch (const mp::AuthenticationError& e) {
        EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos) << e.what();
    }
    t.join();
}

TEST(Listener, AStalledHandshakeTimesOut) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "key",
                   mp::AuthOptions{mp::AuthDigest::sha256, 300ms});
    mp::Connection silent = mp::Client(l.address());  // connects, never answers
    const auto t0 = std::chrono::steady_clock::now();
    try {
        static_cast<void>(l.accept());
        ADD_FAILURE() << "a silent peer was accepted";
    } catch (const mp::AuthenticationError& e) {
        EXPECT_NE(std::string(e.what()).find("in time"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);  // not forever
}

// A client that sends its verdict on the server's answer before that answer came, with its
// first message behind it, has not checked the server: refused, and its message never read
// as if it came from an authenticated peer.
TEST(Listener, APeerThatSendsBeforeTheHandshakeEndsIsRefused) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "key");
    std::thread t([&] {
        mp::Connection raw = mp::Client(l.address());  // no key: plays the handshake by hand
        const std::string challenge = text(raw.recv_bytes());
        const std::string answer = mp::detail::respond_to_challenge(
            "key", std::string_view(challenge).substr(mp::detail::kChallenge.size()));
        std::string stream;
        for (const std::string& m :
             {answer, std::string(mp::detail::kChallenge) + mp::detail::make_challenge({}),
              std::string(mp::detail::kWelcome), std::string("early data")}) {
            const auto n = static_cast<std::uint32_t>(m.size());
            stream += {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
            stream += m;
        }
        ASSERT_EQ(::write(raw.fileno(), stream.data(), stream.size()),
                  static_cast<ssize_t>(stream.size()));
        EXPECT_THROW(static_cast<void>(raw.recv_bytes()), mp::EOFError);  // closed, no verdict
    });
    try {
        static_cast<void>(l.accept());
        ADD_FAILURE() << "a client that did not wait for the server's answer was accepted";
    } catch (const mp::AuthenticationError& e) {
        EXPECT_NE(std::string(e.what()).find("before the handshake ended"), std::string::npos)
            << e.what();
    }
    t.join();
}

// The Listener sets TCP_NODELAY once and its connections inherit it (a small message is sent
// at once, not held back for an acknowledgement); the Client's side sets its own.
TEST(Listener, AcceptedTcpConnectionsSendWithoutDelay) {
    auto nodelay = [](const mp::Connection& c) {
        int v = 0;
        socklen_t len = sizeof v;
        EXPECT_EQ(::getsockopt(c.fileno(), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
        return v != 0;
    };
    for (const char* host : {"127.0.0.1", "::1"}) {
        mp::Listener l(mp::Address::tcp(host, 0), 4, "key");
        mp::Connection client;
        std::thread t([&] { client = mp::Client(l.address(), "key"); });
        mp::Connection server = l.accept();
        t.join();
        EXPECT_TRUE(nodelay(server)) << host;
        EXPECT_TRUE(nodelay(client)) << host;
    }
}

TEST(Listener, DescriptorsCannotCrossTcp) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
    mp::Connection c = mp::Client(l.address());
    mp::Connection s = l.accept();
    auto [a, b] = mp::Pipe();
    EXPECT_THROW(c.send(a), mp::ProcessError);
    c.send(std::string("after"));  // the connection is still usable
    EXPECT_EQ(s.recv<std::string>(), "after");
}

std::atomic<int> g_actions{0};
void count_action() { g_actions.fetch_add(1); }

// A peer across a Listener/Client connection cannot make this process resolve code unless it
// is trusted: a Barrier whose action is a function (its identity travels in the handle) is a
// DecodeError from it, over a Unix socket where its descriptor could travel; with trust_code,
// or over a Pipe between the program's own processes, it decodes and its action runs.
TEST(Listener, UntrustedPeersCannotNameCode) {
    for (bool trusted : {false, true}) {
        mp::AuthOptions auth;
        auth.trust_code = trusted;
        // No key (both sides in this thread); trust is separate from authentication.
        mp::Listener l(mp::Address::unix_socket(temp_path("mp-trust")), 4, std::nullopt, auth);
        mp::Connection c = mp::Client(l.address());
        mp::Connection s = l.accept();
        c.send(mp::Barrier(1, count_action));
        c.send(std::string("plain data still crosses"));
        if (trusted) {
            const int before = g_actions.load();
            s.recv<mp::Barrier>().wait();
            EXPECT_EQ(g_actions.load(), before + 1);
        } else {
            try {
                static_cast<void>(s.recv<mp::Barrier>());
                ADD_FAILURE() << "an untrusted peer named code";
            } catch (const mp::DecodeError& e) {
                EXPECT_NE(std::string(e.what()).find("not trusted"), std::string::npos) << e.what();
            }
        }
        EXPECT_EQ(s.recv<std::string>(), "plain data still crosses");
    }
    auto [a, b] = mp::Pipe();
    a.send(mp::Barrier(1, count_action));
    const int before = g_actions.load();
    b.recv<mp::Barrier>().wait();
    EXPECT_EQ(g_actions.load(), before + 1);
}

TEST(Listener, CloseFromAnotherThreadEndsABlockedAccept) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
    std::thread t([&] { EXPECT_THROW(static_cast<void>(l.accept()), mp::ProcessError); });
    std::this_thread::sleep_for(100ms);
    l.close();
    t.join();
    EXPECT_TRUE(l.closed());
    EXPECT_THROW(static_cast<void>(l.accept()), mp::ProcessError);
}

TEST(Listener, CtrlCUnderAGuardEndsAWaitForAClient) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "k");
    {
        mp::SigintGuard guard;
        std::thread ctrl_c([] {
            std::this_thread::sleep_for(100ms);
            ::kill(::getpid(), SIGINT);
        });
        EXPECT_THROW(static_cast<void>(l.accept()), mp::KeyboardInterrupt);
        ctrl_c.join();
    }
    // The listener is untouched: the next client is accepted as usual.
    std::thread t([&] { mp::Client(l.address(), "k").send_bytes("next"); });
    EXPECT_EQ(text(l.accept().recv_bytes()), "next");
    t.join();
}

TEST(Listener, NobodyListeningIsASystemError) {
    const std::string path = temp_path("mp-nobody");
    try {
        static_cast<void>(mp::Client(path, "k"));
        ADD_FAILURE() << "connected to nothing";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
}

// --- across processes, under every start method ---------------------------------------------------

// A child that connects, answers "ping N" with "pong N" until the parent says "bye". Exits 0 on
// success, 2 when authentication failed (expect_auth_failure says which one is success).
void echo_client(std::string address, std::string key, bool expect_auth_failure) {
    try {
        mp::Connection c = mp::Client(address, key);
        if (expect_auth_failure) std::exit(1);
        for (;;) {
            auto m = c.recv<std::string>();
            if (m == "bye") std::exit(0);
            c.send("pong" + m.substr(4));
        }
    } catch (const mp::AuthenticationError&) {
        std::exit(expect_auth_failure ? 0 : 2);
    }
}

class ListenerP : public mp::test::StartMethodTest {};

TEST_P(ListenerP, ChildClientsOverEveryAddressKind) {
    const std::string name = "mp-test-" + std::to_string(::getpid()) + "-" + GetParam();
    for (const mp::Address& a :
         {mp::Address::unix_socket(temp_path("mp-listener")), mp::Address::abstract_socket(name),
          mp::Address::tcp("127.0.0.1", 0), mp::Address::tcp("::1", 0)}) {
        mp::Listener l(a, 4, "secret");
        auto p = start(echo_client, l.address().to_string(), std::string("secret"), false);
        mp::Connection c = l.accept();
        for (int i = 0; i < 3; ++i) {
            c.send("ping " + std::to_string(i));
            EXPECT_EQ(c.recv<std::string>(), "pong " + std::to_string(i));
        }
        c.send(std::string("bye"));
        join_ok(p);
    }
}

TEST_P(ListenerP, ChildWithTheWrongKeyFailsOnBothSides) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "secret");
    auto bad = start(echo_client, l.address().to_string(), std::string("guess"), true);
    EXPECT_THROW(l.accept(), mp::AuthenticationError);
    join_ok(bad);
    auto good = start(echo_client, l.address().to_string(), std::string("secret"), false);
    mp::Connection c = l.accept();
    c.send(std::string("bye"));
    join_ok(good);
}

// current_process().authkey(): 32 random bytes, the same in every child (and grandchild)
// under every start method, unless a Process was given its own.
void report_authkey(mp::Connection out) {
    out.send(mp::current_process().authkey());
    mp::Process grandchild([](mp::Connection o) { o.send(mp::current_process().authkey()); }, out);
    grandchild.start();
    grandchild.join();
}

TEST_P(ListenerP, ChildrenInheritTheAuthkey) {
    const std::string key = mp::current_process().authkey();
    EXPECT_EQ(key.size(), 32u);
    auto [in, out] = mp::Pipe(false);
    auto p = start(report_authkey, out);
    EXPECT_EQ(in.recv<std::string>(), key);
    EXPECT_EQ(in.recv<std::string>(), key);
    join_ok(p);
    EXPECT_EQ(p.authkey(), key);

    auto own = ctx().Process(report_authkey, out);
    own.set_authkey("per-process key");
    own.start();
    EXPECT_THROW(own.set_authkey("too late"), mp::UsageError);
    EXPECT_EQ(in.recv<std::string>(), "per-process key");
    EXPECT_EQ(in.recv<std::string>(), "per-process key");
    join_ok(own);
}

// Challenges come from a per-process buffer of random bytes: a child must not hand out the
// bytes its parent had buffered (a forked child gets a wiped buffer), under every start method.
void report_challenge(mp::Connection out) {
    out.send(mp::detail::make_challenge(mp::AuthDigest::sha256));
}

TEST_P(ListenerP, ChildrenMakeTheirOwnChallenges) {
    const std::string before =
        mp::detail::make_challenge(mp::AuthDigest::sha256);  // fills the buffer
    auto [in, out] = mp::Pipe(false);
    auto p = start(report_challenge, out);
    const std::string child = in.recv<std::string>();
    join_ok(p);
    const std::string after = mp::detail::make_challenge(mp::AuthDigest::sha256);
    EXPECT_EQ(child.size(), before.size());
    EXPECT_NE(child, after);
    EXPECT_NE(child, before);
    EXPECT_NE(before, after);
}

TEST_P(ListenerP, ChildAuthenticatesWithTheInheritedKey) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, mp::current_process().authkey());
    auto p = start(
        [](std::string address) {
        mp::Connection c = mp::Client(address, mp::current_process().authkey());
        c.send(std::string("same key"));
        },
        l.address().to_string());
    EXPECT_EQ(l.accept().recv<std::string>(), "same key");
    join_ok(p);
}

// mp::wait over a Process, a Pipe end, a Listener and an accepted Connection (Python's
// connection.wait): each is reported when, and only when, it is ready.
TEST_P(ListenerP, WaitOverProcessConnectionAndListenerMixed) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
    auto [a, b] = mp::Pipe();
    auto talk = [](std::string address, mp::Connection c) {
        mp::Connection client = mp::Client(address);
        if (c.recv<std::string>() == "go") c.send(std::string("done"));
        static_cast<void>(c.recv<std::string>());
    };
    mp::Process p = start(talk, l.address().to_string(), b);
    EXPECT_EQ(mp::wait({p, a, l}, 60s), (std::vector<std::size_t>{2}));  // a client waits
    mp::Connection s = l.accept();
    EXPECT_TRUE(mp::wait({p, a, l, s}, 0s).empty());
    a.send(std::string("go"));
    EXPECT_EQ(mp::wait({p, a, l, s}, 60s), (std::vector<std::size_t>{1}));  // "done" came
    EXPECT_EQ(a.recv<std::string>(), "done");
    a.send(std::string("exit"));
    EXPECT_EQ(mp::wait({p}, 60s), (std::vector<std::size_t>{0}));             // ended
    EXPECT_EQ(mp::wait({s}, 60s), (std::vector<std::size_t>{0}));             // its client hung up
    EXPECT_EQ(mp::wait({p, a, l, s}, 0s), (std::vector<std::size_t>{0, 3}));  // a, l quiet
    join_ok(p);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ListenerP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

// --- real Python on the other end -----------------------------------------------------------------

// Debian's python3 (3.11) and pyenv's 3.12 and 3.13, all required: a missing one fails.
std::vector<std::string> interpreters() {
    const auto found = mp::test::required_interpreters();
    for (const auto& m : found.missing) ADD_FAILURE() << "missing interpreter: " << m;
    return found.found;
}

// A Python interpreter running tests/helpers/py_listener_peer.py in `mode` ("client",
// "listen"); its stdout is a pipe. `key`: null for none.
mp::test::PythonPeer listener_peer(const std::string& python, const char* mode,
                                   const std::string& address, const char* key) {
    return mp::test::PythonPeer(python,
                                std::string(MULTIPROC_SOURCE_DIR) +
                                    "/tests/helpers/py_listener_peer.py",
                                {mode, address, key ? mp::test::hex(key) : "-"});
}

// 0 B, 1 MiB and more than 64 MiB, each echoed back intact.
void exchange_sizes(mp::Connection& c) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1} << 20, (std::size_t{65} << 20) + 3}) {
        const auto msg = pattern(n);
        c.send_bytes(msg);
        EXPECT_TRUE(c.recv_bytes() == msg) << n << " bytes";
    }
}

TEST(ListenerPython, PythonClientsAndListenersEveryVersion) {
    for (const std::string& py : interpreters()) {
        SCOPED_TRACE(py);
        // A Python Client to our Listener (3.12+ challenge form), right key then wrong key.
        {
            mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "shared key");
            auto peer = listener_peer(py, "client", l.address().to_string(), "shared key");
            mp::Connection c = l.accept();
            exchange_sizes(c);
            c.close();
            EXPECT_EQ(peer.join(), 0);
            auto wrong = listener_peer(py, "client", l.address().to_string(), "not the key");
            EXPECT_THROW(l.accept(), mp::AuthenticationError);
            EXPECT_EQ(wrong.join(), 3);
        }
        // Our legacy challenge to Python works too, over a Unix path.
        {
            mp::Listener l(mp::Address::unix_socket(temp_path("mp-py")), 4, "k",
                           mp::AuthOptions{mp::AuthDigest::legacy_md5});
            auto peer = listener_peer(py, "client", l.address().to_string(), "k");
            mp::Connection c = l.accept();
            c.send_bytes("legacy");
            EXPECT_EQ(text(c.recv_bytes()), "legacy");
            c.close();
            EXPECT_EQ(peer.join(), 0);
        }
        // Our Client to a Python Listener (3.11 sends the legacy challenge, 3.12+ the new one).
        {
            auto peer = listener_peer(py, "listen", "127.0.0.1:0", "shared key");
            const std::string address = peer.line();
            ASSERT_FALSE(address.empty());
            mp::Connection c = mp::Client(address, "shared key");
            exchange_sizes(c);
            c.close();
            EXPECT_EQ(peer.join(), 0);
        }
        {
            auto peer = listener_peer(py, "listen", "127.0.0.1:0", "shared key");
            const std::string address = peer.line();
            EXPECT_THROW(mp::Client(address, "wrong key"), mp::AuthenticationError);
            EXPECT_EQ(peer.join(), 3);
        }
    }
}

}  // namespace
