// mp::py_manager against real Python manager servers (Debian's python3 3.11, pyenv's 3.12 and
// 3.13; all required), each started by the test as a child running
// tests/helpers/py_manager_server.py: dict, list and queue proxies, every pickle shape through
// the server, proxies returned by methods, reference counting, a wrong authkey, a server killed
// in the middle of a call, two C++ client processes sharing one Python queue (every start
// method), and a fake server's malformed replies.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "helpers/python_peer.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/py_manager.hpp"

namespace {

namespace py = mp::py;
namespace pm = mp::py_manager;
using namespace std::chrono_literals;

const std::string kKey = "py manager key";

// Debian's python3 (3.11) and pyenv's 3.12 and 3.13, all required: a missing one fails.
std::vector<std::string> interpreters() {
    const auto found = mp::test::required_interpreters();
    for (const auto& m : found.missing) ADD_FAILURE() << "missing interpreter: " << m;
    return found.found;
}

// A Python manager server ("serve") or a fake one ("fake") in a child; the destructor (or
// kill()) ends it with SIGKILL.
struct PyServer {
    PyServer(const std::string& python, const char* mode)
        : peer(std::in_place, python,
               std::string(MULTIPROC_SOURCE_DIR) + "/tests/helpers/py_manager_server.py",
               std::vector<std::string>{mode, mp::test::hex(kKey)}),
          address(peer->line()) {}
    void kill() { peer.reset(); }
    pm::Client client() const {
        pm::Client m(address, kKey);
        m.connect();
        return m;
    }
    std::optional<mp::test::PythonPeer> peer;
    std::string address;
};

// f(server) for a server of `mode` under each required interpreter.
template <class F>
void for_each_server(const char* mode, F f) {
    for (const std::string& python : interpreters()) {
        SCOPED_TRACE(python);
        PyServer server(python, mode);
        ASSERT_FALSE(server.address.empty()) << "the Python server did not start";
        f(server);
    }
}

template <class E, class F>
std::string what_of(F f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    ADD_FAILURE() << "no exception of the expected type";
    return "";
}

TEST(PyManagerClient, DictSetGetKeysLenContainsDelAndMissingKeys) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::DictProxy d = m.dict("get_dict");
        d.set("k", 1.5);
        d.set("n", 2);
        EXPECT_EQ(d.get<double>("k"), 1.5);
        EXPECT_EQ(d.get<int>("n"), 2);
        EXPECT_EQ(d.size(), 2u);
        EXPECT_EQ(d.keys<std::string>(), (std::vector<std::string>{"k", "n"}));
        EXPECT_EQ(d.values<double>(), (std::vector<double>{1.5, 2.0}));
        EXPECT_TRUE(d.contains("k"));
        EXPECT_FALSE(d.contains("zz"));
        EXPECT_EQ(what_of<std::out_of_range>([&] { (void)d.get("zz"); }), "KeyError: 'zz'");
        EXPECT_EQ(d.get<int>("zz", 7), 7);
        d.erase("k");
        EXPECT_FALSE(d.contains("k"));
        EXPECT_THROW(d.erase("k"), std::out_of_range);
        EXPECT_THROW(d.pop("k"), std::out_of_range);
        d.update(std::map<std::string, int>{{"a", 1}, {"b", 2}});
        EXPECT_EQ(d.pop<int>("a"), 1);
        EXPECT_EQ((d.items<std::string, int>()),
                  (std::vector<std::pair<std::string, int>>{{"n", 2}, {"b", 2}}));
        EXPECT_EQ((d.copy<std::map<std::string, int>>()),
                  (std::map<std::string, int>{{"b", 2}, {"n", 2}}));
        // The docs' get_dict is one shared dict; SyncManager's "dict" makes a new one a call.
        EXPECT_EQ(m.dict("get_dict").size(), 2u);
        pm::DictProxy fresh = m.dict();
        EXPECT_EQ(fresh.size(), 0u);
        EXPECT_NE(fresh.id(), d.id());
        d.clear();
        EXPECT_EQ(d.size(), 0u);
    });
}

TEST(PyManagerClient, ListAppendIndexLenAndErrors) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::ListProxy l = m.list("get_list");
        l.append(1);
        l.append("two");
        EXPECT_EQ(l.size(), 2u);
        EXPECT_EQ(l.index("two"), 1);
        EXPECT_EQ(l.get<int>(0), 1);
        EXPECT_EQ(l.get<std::string>(-1), "two");
        EXPECT_TRUE(l.contains("two"));
        EXPECT_THROW((void)l.get(5), std::out_of_range);
        EXPECT_THROW((void)l.index("zz"), std::invalid_argument);
        l.extend(std::vector<int>{3, 4});
        l.insert(0, 0);
        l.set(1, 10);
        EXPECT_EQ(l.pop<int>(), 4);
        EXPECT_EQ(l.copy(), (std::vector<py::object>{0, 10, "two", 3}));
        l.remove("two");
        EXPECT_EQ(l.count(3), 1u);
        EXPECT_EQ(m.create<pm::ListProxy>("list", std::vector<int>{1, 2, 3}).copy<int>(),
                  (std::vector<int>{1, 2, 3}));
    });
}

TEST(PyManagerClient, QueuePutGetEmptyTimeoutAndFull) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::QueueProxy q = m.queue("get_queue");
        EXPECT_TRUE(q.empty());
        q.put("hello");
        EXPECT_EQ(q.qsize(), 1u);
        EXPECT_EQ(q.get<std::string>(), "hello");
        EXPECT_THROW((void)q.get(10ms), mp::Empty);
        EXPECT_THROW((void)q.get_nowait(), mp::Empty);
        // A get blocked in the server, satisfied by another thread's put.
        std::thread producer([&] { m.queue("get_queue").put(5); });
        EXPECT_EQ(q.get<int>(), 5);
        producer.join();
        pm::QueueProxy bounded = m.queue("get_bounded_queue");
        bounded.put(1, 1s);
        EXPECT_TRUE(bounded.full());
        EXPECT_THROW(bounded.put(2, 10ms), mp::Full);
        EXPECT_THROW(bounded.put_nowait(2), mp::Full);
        EXPECT_EQ(bounded.get<int>(), 1);
        pm::QueueProxy fresh = m.queue();
        fresh.put(std::vector<double>{1.5});
        EXPECT_EQ(fresh.get<std::vector<double>>(1s), std::vector<double>{1.5});
    });
}

py::object big(std::uint64_t v) { return py::object(py::bigint::from_unsigned(v)); }

TEST(PyManagerClient, EveryPickleShapeRoundTripsThroughThePythonServer) {
    py::bigint minus_two_to_the_100;
    minus_two_to_the_100.le.assign(12, std::byte{0});
    minus_two_to_the_100.le.push_back(std::byte{0xf0});
    const std::vector<std::pair<py::object, std::string>> shapes = {
        {py::object(), "NoneType"},
        {true, "bool"},
        {false, "bool"},
        {7, "int"},
        {-(std::int64_t{1} << 40), "int"},
        {big(std::numeric_limits<std::uint64_t>::max()), "int"},
        {py::object(minus_two_to_the_100), "int"},
        {1.5, "float"},
        {"h\xc3\xa9llo", "str"},
        {py::object(std::vector<std::byte>{std::byte{0}, std::byte{0xff}}), "bytes"},
        {py::make_list({1, "a", py::make_list({2.5})}), "list"},
        {py::make_tuple({1, "b"}), "tuple"},
        {py::make_dict({{"a", 1}, {2, py::make_tuple({})}}), "dict"},
        {py::make_set({1, 2, 3}), "set"},
    };
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::DictProxy d = m.dict();
        pm::BaseProxy inspector = m.create("Inspector");
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            const auto& [value, type] = shapes[i];
            SCOPED_TRACE(type);
            d.set(static_cast<int>(i), value);
            EXPECT_EQ(d.get(static_cast<int>(i)), value);
            EXPECT_EQ(inspector.call<std::string>("type_name", value), type);
        }
        // Typed C++ values, the same way.
        d.set("typed",
              std::make_tuple(std::set<int>{1, 2}, std::map<std::string, double>{{"x", 0.5}},
                              std::vector<std::string>{"a"}));
        const auto back = d.get<std::tuple<std::set<int>, std::map<std::string, double>,
                                           std::vector<std::string>>>("typed");
        EXPECT_EQ(std::get<0>(back), (std::set<int>{1, 2}));
        EXPECT_EQ(std::get<1>(back), (std::map<std::string, double>{{"x", 0.5}}));
        EXPECT_EQ(std::get<2>(back), (std::vector<std::string>{"a"}));
        // A Python exception of no standard counterpart.
        try {
            inspector.call("fail");
            ADD_FAILURE() << "fail() did not throw";
        } catch (const mp::RemoteError& e) {
            EXPECT_EQ(e.type_name(), "ZeroDivisionError");
            EXPECT_EQ(e.remote_what(), "no");
        }
        EXPECT_THROW(inspector.call("not_exposed"), mp::RemoteError);
    });
}

TEST(PyManagerClient, MethodsReturningProxiesAndReferenceCounting) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        const std::size_t before = m.number_of_objects();
        {
            pm::BaseProxy maker = m.create("Maker");
            const auto& exposed = maker.exposed();
            EXPECT_NE(std::find(exposed.begin(), exposed.end(), "make_dict"), exposed.end());
            pm::DictProxy made = maker.call<pm::DictProxy>("make_dict");
            EXPECT_EQ(made.type_id(), "dict");
            EXPECT_TRUE(made.get<bool>("made"));
            pm::DictProxy copy = made;  // copies share one reference
            EXPECT_EQ(m.number_of_objects(), before + 2);
        }
        EXPECT_EQ(m.number_of_objects(), before);  // each last copy sent decref
        // A method that returns no proxy, asked for one: a clear error, not a crash.
        pm::DictProxy d = m.dict();
        EXPECT_THROW(d.call<pm::DictProxy>("copy"), mp::DecodeError);
    });
}

TEST(PyManagerClient, WrongAuthkeyIsAnAuthenticationError) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client wrong(server.address, "not the key");
        EXPECT_THROW(wrong.connect(), mp::AuthenticationError);
        pm::Client m = server.client();  // the server goes on
        m.dict("get_dict").set("after", 1);
    });
}

TEST(PyManagerClient, ServerKilledMidCallIsEOFErrorNotAHang) {
    for_each_server("serve", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::QueueProxy q = m.queue("get_queue");
        std::atomic<int> outcome{0};
        std::thread getter([&] {
            try {
                (void)q.get();  // nothing is ever put: blocked until the server dies
                outcome = 1;
            } catch (const mp::EOFError&) {
                outcome = 2;
            } catch (const std::exception& e) {
                ADD_FAILURE() << "not an EOFError: " << e.what();
                outcome = 3;
            }
        });
        server.kill();
        getter.join();
        EXPECT_EQ(outcome.load(), 2);
        EXPECT_THROW((void)q.qsize(), mp::EOFError);
        EXPECT_THROW((void)m.dict(), mp::EOFError);
    });
}

TEST(PyManagerClient, MalformedRepliesAreDecodeErrors) {
    for_each_server("fake", [&](PyServer& server) {
        pm::Client m = server.client();
        pm::BaseProxy p = m.create("anything");
        EXPECT_THROW(p.call("kind"), mp::DecodeError);
        EXPECT_THROW(p.call("triple"), mp::DecodeError);
        EXPECT_THROW(p.call("garbage"), mp::DecodeError);
        EXPECT_NE(what_of<mp::DecodeError>([&] { p.call("global"); }).find("system"),
                  std::string::npos);
        EXPECT_THROW(p.call("notoken"), mp::DecodeError);
        try {
            p.call("traceback");
            ADD_FAILURE() << "no exception";
        } catch (const mp::RemoteError& e) {
            EXPECT_EQ(e.type_name(), "ZeroDivisionError");
            EXPECT_NE(e.traceback().find("x.py"), std::string::npos);
        }
        EXPECT_EQ(p.call<int>("ok"), 42);  // the client goes on
    });
}

// --- two C++ client processes, one Python queue --------------------------------------------

void produce(std::string address, std::string key, int who) {
    pm::Client m(address, key);
    m.connect();
    pm::QueueProxy q = m.queue("get_queue");
    for (int i = 0; i < 20; ++i) q.put(std::make_tuple(who, i));
}

class PyManagerClientP : public mp::test::StartMethodTest {};

TEST_P(PyManagerClientP, TwoClientProcessesShareOnePythonQueue) {
    const auto found = mp::test::required_interpreters();
    ASSERT_FALSE(found.found.empty()) << "no Python interpreter";
    PyServer server(found.found.front(), "serve");
    auto a = start(produce, server.address, kKey, 1);
    auto b = start(produce, server.address, kKey, 2);
    pm::Client m = server.client();
    pm::QueueProxy q = m.queue("get_queue");
    std::map<int, std::vector<int>> got;
    for (int n = 0; n < 40; ++n) {
        const auto [who, i] = q.get<std::tuple<int, int>>(60s);
        got[who].push_back(i);
    }
    join_ok(a);
    join_ok(b);
    std::vector<int> expected(20);
    for (int i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(got[1], expected);  // one producer's items stay in its order
    EXPECT_EQ(got[2], expected);
    EXPECT_TRUE(q.empty());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PyManagerClientP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
