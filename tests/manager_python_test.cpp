// A multiproc ManagerServer serving Python clients (Debian's python3 3.11, pyenv's 3.12 and 3.13;
// all required) through Python's own multiprocessing.managers (tests/helpers/py_manager_peer.py):
// the docs' remote-manager client unchanged, DictProxy, ListProxy, Namespace, the server-level
// calls, every value shape both ways, several Python clients and a multiproc client on one
// address, a client killed mid-call, a wrong key, malformed and hostile pickles; and every method
// of Python's standard proxies against Python's own manager server (py_manager_diff.py).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "helpers/python_peer.hpp"
#include "multiproc/manager_python.hpp"

namespace {

namespace py = mp::py;

const std::string kScript = MULTIPROC_SOURCE_DIR "/tests/helpers/py_manager_peer.py";
const std::string kDiffScript = MULTIPROC_SOURCE_DIR "/tests/helpers/py_manager_diff.py";
const std::string kKey = "abracadabra";

// A server in this process at a fresh TCP port, serving a queue, a dict and a list to Python.
struct Served {
    mp::ManagerServer server{mp::Address::tcp("127.0.0.1", 0), kKey};
    mp::PyQueue queue;
    mp::PyDict dict;
    mp::PyList list;
    std::thread serving;
    std::string where;

    Served() {
        server.register_py("get_queue", queue);
        server.register_py("get_dict", dict);
        server.register_py("get_list", list);
        where = server.address().to_string();
        serving = std::thread([this] { server.serve_forever(); });
    }
    ~Served() {
        mp::Manager::connect(server.address(), kKey).shutdown();
        serving.join();
    }
    mp::test::PythonPeer peer(const std::string& python, const std::string& scenario,
                              const std::string& arg = "") {
        std::vector<std::string> args{scenario, where, mp::test::hex(kKey)};
        if (!arg.empty()) args.push_back(arg);
        return mp::test::PythonPeer(python, kScript, args);
    }
    // Runs a scenario to its end: its lines (the exit code must be 0).
    std::vector<std::string> run(const std::string& python, const std::string& scenario,
                                 const std::string& arg = "") {
        auto p = peer(python, scenario, arg);
        std::vector<std::string> lines;
        for (std::string l = p.line(); !l.empty(); l = p.line()) lines.push_back(l);
        EXPECT_EQ(p.join(), 0) << scenario;
        return lines;
    }
};

using Lines = std::vector<std::string>;

template <class F>
void each_python(F f) {
    const mp::test::Interpreters pythons = mp::test::required_interpreters();
    for (const std::string& m : pythons.missing) ADD_FAILURE() << "missing interpreter: " << m;
    for (const std::string& python : pythons.found) {
        SCOPED_TRACE(python);
        f(python);
    }
}

TEST(ManagerPython, DocsQueueClientUnchanged) {
    each_python([](const std::string& python) {
        Served s;
        auto p = s.peer(python, "queue");
        EXPECT_EQ(s.queue.get<std::string>(std::chrono::seconds(60)), "hello");
        EXPECT_EQ(p.line(), "put True");
        EXPECT_EQ(p.line(), "taken True");  // only now: Python's get must not take "hello"
        s.queue.put("back");
        EXPECT_EQ(p.line(), "got back");
        EXPECT_EQ(p.line(), "empty _queue.Empty");
        EXPECT_EQ(p.line(), "empty_nowait _queue.Empty");
        EXPECT_EQ(p.join(), 0);
    });
}

TEST(ManagerPython, DictProxy) {
    each_python([](const std::string& python) {
        Served s;
        s.dict.set("from_cpp", 42);
        EXPECT_EQ(s.run(python, "dict"),
                  (Lines{"get 1 two [4] default", "keys ['3', 'a', 'b', 'from_cpp'] 4 True False",
                         "del 3 False", "missing builtins.KeyError",
                         "missing_del builtins.KeyError", "unhashable builtins.TypeError",
                         "update 1 2 1 7 5",
                         "items [('3', '[4]'), ('a', '1'), ('from_cpp', '42'), ('s', '5'), "
                         "('v', '2')]",
                         "copy True True", "cpp 42"}));
        EXPECT_EQ(s.dict.get<int>("a"), 1);
        EXPECT_FALSE(s.dict.contains("b"));
        EXPECT_EQ(s.dict.get<std::vector<int>>(3), std::vector<int>{4});
        EXPECT_THROW(s.dict.get<int>("b"), std::out_of_range);
        EXPECT_EQ(s.dict.size(), 5u);
    });
}

TEST(ManagerPython, ListProxyNamespaceAndCreatedObjects) {
    each_python([](const std::string& python) {
        Served s;
        EXPECT_EQ(s.run(python, "list"),
                  (Lines{"list 1 4 [2, 3] [1, 2, 3, 4] 4 True [1, 2, 3, 4]",
                         "ops 4 1 1 builtins.IndexError", "after [3, 2, 0] [3, 2, 0]",
                         "namespace 1 why builtins.AttributeError", "fresh v 1"}));
        EXPECT_EQ(s.list.copy<std::vector<int>>(), (std::vector<int>{3, 2, 0}));
        EXPECT_EQ(s.list.get<int>(-1), 0);
    });
}

TEST(ManagerPython, ServerCalls) {
    each_python([](const std::string& python) {
        Served s;
        EXPECT_EQ(s.run(python, "server"),
                  (Lines{"methods ['empty', 'full', 'get', 'get_nowait', 'join', 'put', "
                         "'put_nowait', 'qsize', 'shutdown', 'task_done']",
                         "objects True", "debug True",
                         "unknown multiprocessing.managers.RemoteError",
                         "unexposed multiprocessing.managers.RemoteError",
                         "getvalue_queue multiprocessing.managers.RemoteError"}));
    });
}

TEST(ManagerPython, EveryShapeBothWays) {
    each_python([](const std::string& python) {
        Served s;
        auto p = s.peer(python, "shapes");
        ASSERT_EQ(p.line(), "stored 32");
        for (int i = 0; i < 32; ++i) s.dict.set_object(py::make_tuple({"cpp", i}), s.dict.get(i));
        // Typed reads on the C++ side.
        EXPECT_TRUE(s.dict.get(0).is_none());
        EXPECT_TRUE(s.dict.get<bool>(1));
        EXPECT_EQ(s.dict.get<std::int64_t>(6), std::int64_t{1} << 31);
        EXPECT_EQ(s.dict.get<std::int64_t>(7), std::numeric_limits<std::int64_t>::min());
        EXPECT_EQ(s.dict.get<std::uint64_t>(8), std::numeric_limits<std::uint64_t>::max());
        EXPECT_EQ(s.dict.get(9).kind(), py::kind::big_integer);
        EXPECT_EQ(s.dict.get<double>(10), 1.5);
        EXPECT_EQ(s.dict.get<std::string>(14), "h\xc3\xa9llo \xe2\x98\x83");
        EXPECT_EQ(s.dict.get<std::vector<std::byte>>(17).size(), 400u);
        EXPECT_EQ(s.dict.get<std::vector<int>>(20).size(), 2500u);
        EXPECT_EQ((s.dict.get<std::tuple<int, int, int>>(23)), std::make_tuple(1, 2, 3));
        EXPECT_EQ((s.dict.get<std::map<int, std::string>>(27).at(1499)), "1499");
        EXPECT_EQ(s.dict.get<std::set<int>>(29), (std::set<int>{1, 2, 3}));
        EXPECT_EQ(s.dict.get(30).kind(), py::kind::frozenset);
        EXPECT_EQ(s.dict.get(31).kind(), py::kind::bytearray);
        s.dict.set("cpp_done", true);
        EXPECT_EQ(p.line(), "shapes ok");
        EXPECT_EQ(p.join(), 0);
    });
}

TEST(ManagerPython, SeveralPythonClientsAndAMultiprocClientAtOnce) {
    each_python([](const std::string& python) {
        Served s;
        std::vector<mp::test::PythonPeer> peers;
        for (int n : {200, 201, 202}) peers.push_back(s.peer(python, "count", std::to_string(n)));
        mp::Manager m = mp::Manager::connect(s.server.address(), kKey);
        auto d = m.dict<int, int>();
        for (int i = 0; i < 200; ++i) d.set(i, i);
        EXPECT_EQ(d.size(), 200u);
        for (int k = 0; k < 3; ++k) {
            const int n = 200 + k;
            EXPECT_EQ(peers[k].line(), "count " + std::to_string(n * (n - 1) / 2));
            EXPECT_EQ(peers[k].join(), 0);
        }
        EXPECT_EQ(s.dict.size(), 603u);
    });
}

TEST(ManagerPython, AClientKilledMidCallLeavesTheServerServing) {
    each_python([](const std::string& python) {
        Served s;
        {
            auto p = s.peer(python, "block");
            ASSERT_EQ(p.line(), "blocking");
        }  // SIGKILLed while blocked in q.get()
        s.dict.set("a", 1);
        EXPECT_EQ(s.run(python, "garbage", "notrequest"),
                  (Lines{"garbage builtins.EOFError", "after 1"}));
        s.queue.put("still here");
        EXPECT_EQ(s.queue.get<std::string>(std::chrono::seconds(60)), "still here");
    });
}

TEST(ManagerPython, WrongKeyIsRefusedAndTheServerGoesOn) {
    each_python([](const std::string& python) {
        Served s;
        EXPECT_EQ(s.run(python, "wrongkey"),
                  (Lines{"wrongkey multiprocessing.context.AuthenticationError"}));
        EXPECT_EQ(s.run(python, "count", "3"), (Lines{"count 3"}));
    });
}

TEST(ManagerPython, MalformedAndHostilePicklesCloseOnlyTheirConnection) {
    each_python([](const std::string& python) {
        Served s;
        s.dict.set("a", 1);
        for (const std::string what : {"pickle", "hostile", "notrequest"})
            EXPECT_EQ(s.run(python, "garbage", what),
                      (Lines{"garbage builtins.EOFError", "after 1"}))
                << what;
        // Not a pickle: a multiproc request as far as the server can tell; its error reply is
        // no pickle either.
        EXPECT_EQ(s.run(python, "garbage", "raw"),
                  (Lines{"garbage _pickle.UnpicklingError", "after 1"}));
    });
}

// Every method of Python's standard proxies, called alike on this server and on Python's own
// SyncManager server (tests/helpers/py_manager_diff.py): the same results and exception types,
// but for the documented differences, each checked to give its documented outcome.
TEST(ManagerPython, DifferentialAgainstPythonsOwnManager) {
    each_python([](const std::string& python) {
        Served s;
        auto p = mp::test::PythonPeer(python, kDiffScript, {s.where, mp::test::hex(kKey)});
        Lines lines, unexpected;
        for (std::string l = p.line(); !l.empty(); l = p.line()) {
            lines.push_back(l);
            if (l.rfind("DIFF", 0) == 0) unexpected.push_back(l);
            std::printf("%s\n", l.c_str());  // the known differences, in the test's log
        }
        EXPECT_EQ(p.join(), 0);
        EXPECT_EQ(unexpected, Lines{});
        ASSERT_FALSE(lines.empty());
        EXPECT_NE(lines.back().find("multiproc only, 0 unexpected"), std::string::npos)
            << lines.back();
    });
}

std::size_t threads_now() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

// serve_forever ends the threads of the clients still connected when it returns (a multiproc
// client idle on its connection, a Python client blocked in q.get()), so none outlives it.
TEST(ManagerPython, ServeForeverEndsTheThreadsOfClientsStillConnected) {
    const mp::test::Interpreters pythons = mp::test::required_interpreters();
    ASSERT_FALSE(pythons.found.empty()) << "no Python interpreter";
    std::optional<Served> warm_up;  // whatever the library starts once is started before
    warm_up.emplace();
    warm_up.reset();
    const std::size_t before = threads_now();
    {
        mp::ManagerServer server(mp::Address::tcp("127.0.0.1", 0), kKey);
        mp::PyQueue q;
        server.register_py("get_queue", q);
        std::thread serving([&] { server.serve_forever(); });
        mp::Manager idle = mp::Manager::connect(server.address(), kKey);
        EXPECT_EQ(idle.object_count(), 0u);
        auto p = mp::test::PythonPeer(pythons.found[0], kScript,
                                      {"block", server.address().to_string(), mp::test::hex(kKey)});
        ASSERT_EQ(p.line(), "blocking");
        mp::Manager::connect(server.address(), kKey).shutdown();
        serving.join();
        EXPECT_EQ(threads_now(), before);
    }
}

TEST(ManagerPython, CppSideOfTheObjects) {
    mp::PyQueue q(1);
    q.put(1);
    EXPECT_THROW(q.put(2, std::chrono::milliseconds(1)), mp::Full);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get<int>(), 1);
    EXPECT_THROW(q.get(std::chrono::milliseconds(1)), mp::Empty);
    q.task_done();
    q.join();
    EXPECT_THROW(q.task_done(), std::invalid_argument);
    mp::PyDict d;
    d.set(1, "one");
    EXPECT_EQ(d.get<std::string>(1.0), "one");  // 1 and 1.0 are one key, as in Python
    EXPECT_TRUE(d.erase(true));
    EXPECT_FALSE(d.erase(1));
    EXPECT_THROW(d.set(py::make_list(), 1), std::runtime_error);  // unhashable
    mp::PyList l;
    l.append(std::vector<int>{1, 2});
    EXPECT_EQ(l.get<std::vector<int>>(0), (std::vector<int>{1, 2}));
    EXPECT_THROW(static_cast<void>(l.get(1)), std::out_of_range);
}

}  // namespace
