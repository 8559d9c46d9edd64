// Managers: the server process, dict/list/Namespace/Value/Array proxies across processes under
// every start method, reference counting, and a server that dies or clients that misbehave.
#include "multiproc/managers.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/context.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/process.hpp"

namespace {

using namespace std::chrono_literals;
using Dict = mp::DictProxy<std::string, int>;

class ManagerP : public mp::test::StartMethodTest {};

int add_one(int x) { return x + 1; }

void fill(Dict d, mp::ListProxy<int> l, mp::NamespaceProxy ns, mp::ValueProxy<double> v,
          mp::ArrayProxy<int> a) {
    d.set("child", static_cast<int>(getpid()));
    d.set("seven", 7);
    for (int i = 0; i < 5; ++i) l.append(i);
    ns.set<std::string>("name", "from the child");
    v.set(2.5);
    a.set(-1, 42);
}

void count_up(Dict d, mp::ValueProxy<int> v, int n) {
    for (int i = 0; i < n; ++i) {
        d.update_with("n", add_one);
        v.update_with(add_one);
    }
}

int die(int) {
    std::raise(SIGKILL);
    return 0;
}

void die_holding_the_dict(Dict d) {
    d.set("before", 1);
    d.update_with("k", die);  // runs here, under the dict's lock
}

void hammer(Dict d, mp::ValueProxy<int> v) {
    for (int i = 0;; ++i) {
        d.set("k" + std::to_string(i % 100), i);  // in place, under the dict's lock
        v.set(i);                                 // through the server
    }
}

// --- across processes ---------------------------------------------------------------------------

TEST_P(ManagerP, ChildChangesSharedObjects) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    auto l = m.list<int>({100});
    auto ns = m.Namespace();
    auto v = m.Value<double>(0.5);
    auto a = m.Array<int>(3);
    auto p = start(fill, d, l, ns, v, a);
    join_ok(p);
    EXPECT_EQ(d.get("seven"), 7);
    EXPECT_NE(d.get("child"), getpid());
    EXPECT_EQ(l.copy(), (std::vector<int>{100, 0, 1, 2, 3, 4}));
    EXPECT_EQ(ns.get<std::string>("name"), "from the child");
    EXPECT_EQ(v.value(), 2.5);
    EXPECT_EQ(a.copy(), (std::vector<int>{0, 0, 42}));
}

TEST_P(ManagerP, ContextMakesAManager) {
    mp::Manager m = ctx().Manager();  // Python's ctx.Manager()
    Dict d = m.dict<std::string, int>();
    auto v = m.Value<int>(0);
    auto p = start(count_up, d, v, 3);
    join_ok(p);
    EXPECT_EQ(d.get("n"), 3);
    EXPECT_EQ(v.get(), 3);
}

TEST_P(ManagerP, UpdateWithIsAtomicAcrossProcesses) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    auto v = m.Value<int>(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(count_up, d, v, 100));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(d.get("n"), 300);
    EXPECT_EQ(v.get(), 300);
}

TEST_P(ManagerP, ReferencesOfAChildAreDroppedWhenItEnds) {
    mp::Manager m(ctx());
    {
        Dict d = m.dict<std::string, int>();
        auto v = m.Value<int>(0);
        auto p = start(count_up, d, v, 1);
        join_ok(p);
        EXPECT_EQ(d.get("n"), 1);
        EXPECT_EQ(m.object_count(), 2U);
    }
    // The server drops an ended child's references when it reads the end of the child's
    // connection, which may come just after join() returns: wait for it, boundedly.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (m.object_count() != 0U && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    EXPECT_EQ(m.object_count(), 0U);
}

TEST_P(ManagerP, AProxyInTransitKeepsItsObject) {
    mp::Manager m(ctx());
    auto [r, w] = mp::Pipe();
    {
        auto v = m.Value<int>(41);
        w.send(v);
    }  // the sender's last proxy is gone before the receiver has it
    auto v = r.recv<mp::ValueProxy<int>>();
    EXPECT_EQ(v.update_with(add_one), 42);
    EXPECT_EQ(m.object_count(), 1U);
    v = {};
    EXPECT_EQ(m.object_count(), 0U);
}

TEST_P(ManagerP, AChildKilledMidCallDisturbsNobody) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    auto v = m.Value<int>(-1);
    auto p = start(hammer, d, v);
    while (d.size() < 100 || v.get() < 100) std::this_thread::sleep_for(1ms);
    p.kill();
    p.join();
    d.set("after", 1);
    EXPECT_EQ(d.get("after"), 1);
    EXPECT_EQ(d.size(), 101U);
    // A v.set the child wrote just before it died may still be served after this point (its
    // server thread reads it before the end of the connection), so v is only read here, and a
    // new object shows that the server still serves.
    EXPECT_GE(v.get(), 100);
    auto w = m.Value<int>(0);
    w.set(7);
    EXPECT_EQ(w.get(), 7);
    EXPECT_EQ(m.object_count(), 3U);
}

int record(Dict d, int x) {
    d.set(std::to_string(x), x * x);
    return d.update_with("calls", add_one) > 0 ? x : -1;
}

TEST_P(ManagerP, ProxiesTravelInPoolTasks) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    {
        mp::PoolOptions o;
        o.context = ctx();
        mp::Pool pool(2, o);
        std::vector<mp::AsyncResult<int>> rs;
        for (int x = 0; x < 10; ++x) rs.push_back(pool.apply_async(record, d, x));
        for (int x = 0; x < 10; ++x) EXPECT_EQ(rs[static_cast<std::size_t>(x)].get(), x);
    }
    EXPECT_EQ(d.get("calls"), 10);
    EXPECT_EQ(d.get("9"), 81);
}

TEST_P(ManagerP, AChildKilledHoldingTheDictLeavesItUsable) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    for (int i = 0; i < 2000; ++i) d.set("key" + std::to_string(i), i);  // grows the table
    auto p = start(die_holding_the_dict, d);
    p.join(60s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
    EXPECT_EQ(d.get("before"), 1);  // the next locker repairs the table and goes on
    EXPECT_FALSE(d.contains("k"));
    EXPECT_EQ(d.size(), 2001U);
    EXPECT_EQ(d.get("key1999"), 1999);
    d.set("after", 2);
    EXPECT_EQ(d.keys().front(), "key0");
    EXPECT_EQ(d.keys().back(), "after");
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ManagerP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

// --- the proxies' API ---------------------------------------------------------------------------

TEST(Manager, DictBehavesAsPythonsDict) {
    mp::Manager m;
    Dict d = m.dict<std::string, int>();
    EXPECT_EQ(d.size(), 0U);
    d.set("b", 2);
    d.set("a", 1);
    d.set("b", 3);
    EXPECT_EQ(d.get("b"), 3);
    EXPECT_THROW(static_cast<void>(d.get("zz")), std::out_of_range);
    EXPECT_EQ(d.get("zz", -1), -1);
    EXPECT_TRUE(d.contains("a"));
    EXPECT_FALSE(d.contains("zz"));
    EXPECT_EQ(d.keys(), (std::vector<std::string>{"b", "a"}));  // insertion order
    EXPECT_EQ(d.values(), (std::vector<int>{3, 1}));
    EXPECT_EQ(d.items(), (std::vector<std::pair<std::string, int>>{{"b", 3}, {"a", 1}}));
    EXPECT_EQ(d.setdefault("a", 9), 1);
    EXPECT_EQ(d.setdefault("c", 9), 9);
    d.update(std::map<std::string, int>{{"d", 4}, {"a", 10}});
    EXPECT_EQ(d.copy(), (std::map<std::string, int>{{"a", 10}, {"b", 3}, {"c", 9}, {"d", 4}}));
    EXPECT_EQ(d.pop("d"), 4);
    EXPECT_THROW(d.pop("d"), std::out_of_range);
    EXPECT_EQ(d.pop("d", 0), 0);
    EXPECT_TRUE(d.erase("c"));
    EXPECT_FALSE(d.erase("c"));
    EXPECT_EQ(d.update_with("b", add_one), 4);
    EXPECT_EQ(d.update_with("new", add_one, 41), 42);
    d.clear();
    EXPECT_EQ(d.size(), 0U);
}

TEST(Manager, ListIndexesAsPython) {
    mp::Manager m;
    auto l = m.list<std::string>();
    l.append("a");
    l.extend(std::vector<std::string>{"b", "c"});
    EXPECT_EQ(l.get(-1), "c");
    EXPECT_EQ(l.get(0), "a");
    l.set(-2, "B");
    l.insert(0, "start");
    l.insert(-1, "before-c");
    l.insert(100, "end");
    EXPECT_EQ(l.copy(), (std::vector<std::string>{"start", "a", "B", "before-c", "c", "end"}));
    EXPECT_EQ(l.pop(), "end");
    EXPECT_EQ(l.pop(0), "start");
    EXPECT_THROW(static_cast<void>(l.get(4)), std::out_of_range);
    EXPECT_THROW(static_cast<void>(l.get(-5)), std::out_of_range);
    EXPECT_EQ(l.size(), 4U);
    l.clear();
    EXPECT_THROW(l.pop(), std::out_of_range);
}

TEST(Manager, NamespaceValueAndArray) {
    mp::Manager m;
    auto ns = m.Namespace();
    ns.set("x", 1);
    ns.set<std::vector<double>>("v", {1.5, 2.5});
    EXPECT_EQ(ns.get<int>("x"), 1);
    EXPECT_EQ(ns.get<std::vector<double>>("v"), (std::vector<double>{1.5, 2.5}));
    EXPECT_TRUE(ns.contains("x"));
    EXPECT_TRUE(ns.erase("x"));
    EXPECT_THROW(static_cast<void>(ns.get<int>("x")), std::out_of_range);
    auto v = m.Value<std::string>("hi");
    EXPECT_EQ(v.value(), "hi");
    auto a = m.Array<int>({1, 2, 3});
    EXPECT_EQ(a.size(), 3U);
    EXPECT_EQ(a.get(-1), 3);
    EXPECT_THROW(a.set(3, 0), std::out_of_range);
}

TEST(Manager, ObjectsAreFreedWithTheirLastProxy) {
    mp::Manager m;
    {
        Dict d = m.dict<std::string, int>();
        Dict copy = d;
        auto l = m.list<int>();
        EXPECT_EQ(m.object_count(), 2U);
        d = Dict();
        EXPECT_EQ(m.object_count(), 2U);  // `copy` still refers to the dict
    }
    EXPECT_EQ(m.object_count(), 0U);
}

// --- failures -----------------------------------------------------------------------------------

TEST(Manager, ADeadServerFailsEveryCallAtOnce) {
    mp::Manager m;
    Dict d = m.dict<std::string, int>();
    auto l = m.list<int>();
    d.set("a", 1);
    ASSERT_TRUE(m.pid());
    ASSERT_EQ(::kill(*m.pid(), SIGKILL), 0);
    // Until the kernel has ended the server, a call may still succeed; from then on, every call
    // fails with mp::EOFError (its pooled connection closed, or the socket refused), never hangs.
    const auto until = std::chrono::steady_clock::now() + 60s;
    bool failed = false;
    while (!failed && std::chrono::steady_clock::now() < until) {
        try {
            d.set("a", 2);
            std::this_thread::sleep_for(1ms);
        } catch (const mp::EOFError&) {
            failed = true;
        }
    }
    EXPECT_TRUE(failed);
    for (int i = 0; i < 3; ++i) EXPECT_THROW(d.set("a", 2), mp::EOFError);
    EXPECT_THROW(l.append(1), mp::EOFError);
    EXPECT_THROW(static_cast<void>(m.dict<std::string, int>()), mp::EOFError);
}

TEST(Manager, WrongKeyGarbageAndUnknownCallsDoNotDisturbTheServer) {
    mp::Manager m;
    Dict d = m.dict<std::string, int>();
    d.set("a", 1);
    EXPECT_THROW(static_cast<void>(mp::Manager::connect(m.address(), std::string("wrong key"))),
                 mp::AuthenticationError);
    {
        // No key at all: the server's challenge is not answered.
        mp::Connection c = mp::Client(m.address());
        c.send_bytes(std::string(1000, 'x'));
    }
    {
        // Authenticated, then garbage, a request before hello, an unknown object and method.
        mp::Connection c = mp::Client(m.address(), mp::current_process().authkey());
        auto reply_fails = [&](const mp::Encoder& e) {
            c.send_bytes(std::span<const std::byte>(e.bytes()));
            const auto r = c.recv_bytes();
            mp::Decoder dec(r);
            EXPECT_THROW(mp::detail::read_task_status(dec), mp::ProcessError);
        };
        reply_fails(mp::Encoder{});  // no bytes at all
        mp::Encoder before_hello;
        before_hello(std::uint64_t{d.id()}, std::string("get"));
        reply_fails(before_hello);
        mp::Encoder hello;
        hello(std::uint64_t{0}, std::string("hello"), std::uint64_t{12345});
        c.send_bytes(std::span<const std::byte>(hello.bytes()));
        static_cast<void>(c.recv_bytes());
        mp::Encoder unknown_object;
        unknown_object(std::uint64_t{999999}, std::string("get"));
        reply_fails(unknown_object);
        mp::Encoder unknown_method;
        unknown_method(std::uint64_t{d.id()}, std::string("frobnicate"));
        reply_fails(unknown_method);
        mp::Encoder truncated;
        truncated(std::uint64_t{d.id()}, std::string("set"), std::uint64_t{1000});
        reply_fails(truncated);
    }
    EXPECT_EQ(d.get("a"), 1);
    auto l = m.list<int>({5});
    EXPECT_EQ(l.get(0), 5);  // the server still serves
    EXPECT_EQ(m.object_count(), 2U);
}

TEST(Manager, ServesAHundredConcurrentClients) {
    // A Value and a list are served by the server (a dict attached in place is not): 100
    // threads calling at once hold 100 connections, each served by its own server thread.
    mp::Manager m;
    auto v = m.Value<int>(0);
    auto l = m.list<int>();
    std::atomic<int> ready{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 100; ++t)
        ts.emplace_back([&, t] {
            ready.fetch_add(1);
            while (ready.load() < 100) std::this_thread::yield();
            for (int i = 0; i < 20; ++i) v.update_with(add_one);
            l.append(t);
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(v.get(), 2000);
    auto got = l.copy();
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), 100U);
    for (int t = 0; t < 100; ++t) EXPECT_EQ(got[static_cast<std::size_t>(t)], t);
}

TEST(Manager, AnUntrustingServerRefusesShippedFunctions) {
    // Over TCP, where every call goes through the server (no shared memory).
    mp::ManagerServer server("127.0.0.1:0", "key");
    std::thread serving([&] { server.serve_forever(); });
    {
        mp::Manager c = mp::Manager::connect(server.address(), std::string("key"));
        Dict d = c.dict<std::string, int>();
        d.set("a", 1);
        EXPECT_THROW(d.update_with("a", add_one), mp::DecodeError);
        EXPECT_EQ(d.get("a"), 1);
        d.update(std::map<std::string, int>{{"b", 2}});
        EXPECT_EQ(d.items(), (std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}}));
        c.shutdown();
    }
    serving.join();
}

}  // namespace
