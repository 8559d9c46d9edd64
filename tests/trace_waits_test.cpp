// The timeline's events outside pools, run once per start method: queue and lock waits in the
// process that waited (a child's reach the parent's file), manager calls, and the starts and
// exits of Processes. The waits are timed-out gets and acquires: they block for certain.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "helpers/start_method_test.hpp"
#include "helpers/text_file.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/queues.hpp"
#include "multiproc/synchronize.hpp"
#include "multiproc/trace.hpp"

namespace {

using namespace std::chrono_literals;
using Dict = mp::DictProxy<std::string, int>;

using mp::test::count;
using mp::test::take_file;

// The start of an event's JSON object: its name, category and track.
std::string event(const std::string& name, const std::string& cat, pid_t pid) {
    return "\"name\":\"" + name + "\",\"cat\":\"" + cat + "\",\"pid\":" + std::to_string(pid) + ",";
}

std::string temp_path(const std::string& suffix) {
    return "/tmp/mp-trace-waits-test-" + std::to_string(mp::current_process().pid()) + suffix;
}

void get_from_empty(mp::Queue<int> q) {
    try {
        (void)q.get(50ms);
    } catch (const mp::Empty&) {
        std::_Exit(0);
    }
    std::_Exit(2);
}

void acquire_held(mp::Lock lock) { std::_Exit(lock.acquire(50ms) ? 2 : 0); }

void get_then_block(mp::Queue<int> q) {
    try {
        (void)q.get(50ms);
    } catch (const mp::Empty&) {
    }
    (void)q.get();  // killed while it waits here
    std::_Exit(2);
}

int wait_in_worker(mp::Lock lock) {
    if (lock.acquire(50ms)) std::_Exit(2);
    return static_cast<int>(mp::current_process().pid());
}

// The text of a file ("" when missing).
std::string read_file(const std::string& path) {
    std::stringstream s;
    s << std::ifstream(path).rdbuf();
    return s.str();
}

void use_dict(Dict d) { d.set("child", 1); }

void exit_with(int code) { std::_Exit(code); }

class TraceWaitsTest : public mp::test::StartMethodTest {
protected:
    void TearDown() override { mp::trace::set_wait_threshold(1ms); }
};

TEST_P(TraceWaitsTest, AQueueGetThatBlocksInAChildIsAWaitOnTheChildsTrack) {
    mp::Queue<int> q;
    const std::string path = temp_path("-get.json");
    mp::trace::start(path);
    auto p = start(get_from_empty, q);
    join_ok(p);
    EXPECT_THROW((void)q.get(20ms), mp::Empty);  // and one in this process
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, event("queue get", "wait", *p.pid())), 1u) << json;
    EXPECT_EQ(count(json, event("queue get", "wait", mp::current_process().pid())), 1u);
    // The children's directory is gone with the recording.
    EXPECT_FALSE(std::filesystem::exists("/tmp/multiproc-trace-" +
                                         std::to_string(mp::current_process().pid())));
}

TEST_P(TraceWaitsTest, WaitsUnderTheThresholdAreLeftOut) {
    mp::Queue<int> q;
    const std::string path = temp_path("-threshold.json");
    mp::trace::set_wait_threshold(std::chrono::seconds(30));
    mp::trace::start(path);
    auto p = start(get_from_empty, q);
    join_ok(p);
    mp::trace::stop();
    EXPECT_EQ(count(take_file(path), "\"cat\":\"wait\""), 0u);
}

TEST_P(TraceWaitsTest, ALockHeldByOneProcessAndWaitedForByAnotherIsAWait) {
    mp::Lock lock;
    const std::string path = temp_path("-lock.json");
    mp::trace::start(path);
    lock.acquire();
    auto p = start(acquire_held, lock);
    join_ok(p);
    lock.release();
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, event("lock", "wait", *p.pid())), 1u) << json;
}

TEST_P(TraceWaitsTest, AWaitInAPoolWorkerIsOnTheWorkersTrack) {
    mp::Lock lock;
    const std::string path = temp_path("-worker.json");
    mp::trace::start(path);
    lock.acquire();
    int worker = 0;
    {
        mp::PoolOptions o;
        o.context = ctx();
        mp::Pool pool(1, o);
        worker = pool.apply(wait_in_worker, lock);
        pool.close();
        pool.join();
    }
    lock.release();
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, event("lock", "wait", worker)), 1u) << json;
}

TEST_P(TraceWaitsTest, AChildKilledWhileRecordingLeavesItsWholeEvents) {
    mp::Queue<int> q;
    const std::string path = temp_path("-killed.json");
    mp::trace::start(path);
    auto p = start(get_then_block, q);
    const std::string events = "/tmp/multiproc-trace-" +
                               std::to_string(mp::current_process().pid()) + "/" +
                               std::to_string(*p.pid()) + ".events";
    // Its first wait is written once its line is whole; then it blocks for good.
    for (int i = 0; i < 6000; ++i) {
        const std::string text = read_file(events);
        if (!text.empty() && text.back() == '\n') break;
        std::this_thread::sleep_for(10ms);
    }
    p.kill();
    p.join();
    // A line torn by a kill mid-write (one write(2) a line makes it unlikely): skipped.
    std::ofstream(events, std::ios::app) << *p.pid() << "\twait\t1\t2\tqueue get\t";
    mp::trace::stop();
    const std::string json = take_file(path);
    EXPECT_EQ(count(json, event("queue get", "wait", *p.pid())), 1u) << json;
    EXPECT_EQ(count(json, "killed by signal 9"), 1u);
    EXPECT_EQ(json.substr(json.size() - 3), "]}\n");
}

TEST_P(TraceWaitsTest, ManagerCallsAreSpansOfTheCallingProcess) {
    mp::Manager m(ctx());
    Dict d = m.dict<std::string, int>();
    auto l = m.list<int>();
    const std::string path = temp_path("-manager.json");
    mp::trace::start(path);
    d.set("a", 1);
    EXPECT_EQ(d.get("a"), 1);
    l.append(2);
    auto p = start(use_dict, d);
    join_ok(p);
    mp::trace::stop();
    const std::string json = take_file(path);
    const pid_t me = mp::current_process().pid();
    EXPECT_EQ(count(json, "\"cat\":\"manager\",\"pid\":" + std::to_string(me) + ","), 3u) << json;
    EXPECT_EQ(count(json, "\"method\":\"set\""), 2u);
    EXPECT_EQ(count(json, "\"method\":\"get\""), 1u);
    EXPECT_EQ(count(json, "\"method\":\"append\""), 1u);
    EXPECT_EQ(count(json, event("manager dict.set", "manager", me)), 1u);  // the type as created
    EXPECT_EQ(count(json, event("manager list.append", "manager", me)), 1u);
    EXPECT_EQ(count(json, "\"cat\":\"manager\",\"pid\":" + std::to_string(*p.pid()) + ","), 1u);
}

TEST_P(TraceWaitsTest, AProcessStartAndExitAreOnTheParentsTrack) {
    const std::string path = temp_path("-process.json");
    mp::trace::start(path);
    auto p = start(exit_with, 3);
    p.join(60s);
    EXPECT_EQ(p.exitcode(), std::optional<int>(3));
    mp::trace::stop();
    const std::string json = take_file(path);
    const pid_t me = mp::current_process().pid();
    EXPECT_EQ(count(json, event("start " + p.name(), "process", me)), 1u) << json;
    EXPECT_EQ(count(json, "\"method\":\"" + GetParam() + "\""), 1u);
    const std::string exit = "process " + std::to_string(*p.pid()) + " exited with code 3";
    EXPECT_EQ(count(json, event(exit, "process", me)), 1u);
}

TEST_P(TraceWaitsTest, NothingIsRecordedWhenTracingIsOff) {
    mp::Queue<int> q;
    auto p = start(get_from_empty, q);
    join_ok(p);
    EXPECT_FALSE(mp::trace::active());
    EXPECT_FALSE(std::filesystem::exists("/tmp/multiproc-trace-" +
                                         std::to_string(mp::current_process().pid())));
}

// A directory of this pid left by a recorder that died (its pid reused by this process) is
// not a recording: a child of a process that records nothing writes no events into it.
TEST_P(TraceWaitsTest, AChildOfAProcessNotRecordingIgnoresALeftoverDirectory) {
    const std::string dir = "/tmp/multiproc-trace-" + std::to_string(mp::current_process().pid());
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/wait_ns") << "0\n";
    mp::Queue<int> q;
    auto p = start(get_from_empty, q);
    join_ok(p);
    const bool events = std::filesystem::exists(dir + "/" + std::to_string(*p.pid()) + ".events");
    std::filesystem::remove_all(dir);
    EXPECT_FALSE(events);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, TraceWaitsTest,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
