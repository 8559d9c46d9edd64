// Queue, SimpleQueue, JoinableQueue: in one process (threads), then across real processes once
// per start method, with the queues passed as Process arguments. What survivors see when a
// producer or consumer is killed, and corrupt queue memory, are in queues_faults_test.cpp.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "helpers/queue_items.hpp"
#include "helpers/sanitizer.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/process.hpp"
#include "multiproc/queues.hpp"
#include "multiproc/synchronize.hpp"
#include "queue_layout.hpp"
#include "sys/mapping.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mp::test;  // QueuesP, pattern, mixed_sizes

// The 4 x 4 x 100,000 test moves 400,000 items; under ASan each put and get is several times
// slower on this 2-core machine, so the sanitizer build moves a quarter of them.
#ifdef MP_TEST_ASAN
constexpr std::uint64_t kPerProducer = 25'000;
#else
constexpr std::uint64_t kPerProducer = 100'000;
#endif

static_assert(mp::is_shippable_v<mp::Queue<int>> && mp::is_shippable_v<mp::SimpleQueue<int>> &&
              mp::is_shippable_v<mp::JoinableQueue<std::string>>);

struct Point {
    int x = 0;
    std::string label;
    std::vector<double> ws;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(x, label, ws);
    }
    bool operator==(const Point&) const = default;
};

// ---- one process ---------------------------------------------------------------------------

TEST(Queues, FifoSizesAndNowait) {
    mp::Queue<int> q;
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.maxsize(), 0);
    for (int i = 0; i < 10; ++i) q.put(i);
    EXPECT_EQ(q.qsize(), 10u);
    EXPECT_FALSE(q.empty());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(q.get(), i);
    EXPECT_TRUE(q.empty());
    EXPECT_THROW(q.get_nowait(), mp::Empty);
    EXPECT_THROW(q.get(20ms), mp::Empty);
    EXPECT_THROW(q.get(false), mp::Empty);
    q.put_nowait(5);
    EXPECT_EQ(q.get_nowait(), 5);
}

TEST(Queues, BoundedFullAndTimeouts) {
    mp::Queue<std::string> q(2);
    EXPECT_EQ(q.maxsize(), 2);
    q.put("a");
    q.put("b", 1s);
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait("c"), mp::Full);
    EXPECT_THROW(q.put("c", 20ms), mp::Full);
    EXPECT_THROW(q.put("c", false), mp::Full);
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ(q.get(), "a");
    EXPECT_FALSE(q.full());
    q.put_nowait("c");
    // A producer blocked on a full queue goes on once a consumer makes room.
    std::thread t([&] { q.put("d"); });
    EXPECT_EQ(q.get(), "b");
    EXPECT_EQ(q.get(), "c");
    EXPECT_EQ(q.get(30s), "d");
    t.join();
    EXPECT_TRUE(q.empty());
}

TEST(Queues, CloseAndJoinThread) {
    mp::Queue<int> q;
    q.put(1);
    mp::Queue<int> copy = q;  // a copy is the same queue object
    EXPECT_THROW(q.join_thread(), mp::UsageError);
    q.cancel_join_thread();
    EXPECT_FALSE(q.closed());
    q.close();
    EXPECT_TRUE(q.closed());
    EXPECT_TRUE(copy.closed());  // every handle of this process
    EXPECT_THROW(q.put(2), mp::UsageError);
    EXPECT_THROW(copy.put(2), mp::UsageError);
    EXPECT_THROW((void)q.get(), mp::UsageError);
    EXPECT_NO_THROW(q.join_thread());
    mp::SimpleQueue<int> s;
    s.put(1);
    EXPECT_FALSE(s.closed());
    s.close();
    EXPECT_TRUE(s.closed());
    EXPECT_THROW(s.put(2), mp::UsageError);
    EXPECT_THROW((void)s.get(), mp::UsageError);
}

TEST(Queues, CopiesShare) {
    mp::SimpleQueue<std::string> a;
    mp::SimpleQueue<std::string> b = a;
    EXPECT_TRUE(a.empty());
    a.put("x");
    EXPECT_FALSE(b.empty());
    EXPECT_EQ(b.get(), "x");
    EXPECT_TRUE(a.empty());
}

TEST(Queues, TypesAndMixedSizes) {
    mp::Queue<Point> pq;
    Point p{3, "three", {1.5, 2.5}};
    pq.put(p);
    EXPECT_EQ(pq.get(), p);

    mp::Queue<std::map<std::string, std::vector<int>>> mq;
    mq.put({{"a", {1, 2}}, {"b", {}}});
    EXPECT_EQ(mq.get().at("a"), (std::vector<int>{1, 2}));

    mp::Queue<std::variant<int, std::string>> vq;
    vq.put(7);
    vq.put(std::string("seven"));
    EXPECT_EQ(std::get<int>(vq.get()), 7);
    EXPECT_EQ(std::get<std::string>(vq.get()), "seven");

    mp::Queue<std::string> sq;
    const auto sizes = mixed_sizes();
    for (unsigned round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < sizes.size(); ++i)
            sq.put(pattern(sizes[i], static_cast<unsigned>(i + round)));
    for (unsigned round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < sizes.size(); ++i)
            ASSERT_EQ(sq.get(), pattern(sizes[i], static_cast<unsigned>(i + round))) << i;
    EXPECT_TRUE(sq.empty());
}

TEST(Queues, UnboundedGrowsWithoutAConsumer) {
    mp::Queue<std::uint64_t> q;
    constexpr std::uint64_t n = 300'000;  // ~4.8 MB of records: many chunks
    for (std::uint64_t i = 0; i < n; ++i) q.put_nowait(i);
    EXPECT_EQ(q.qsize(), n);
    for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(q.get_nowait(), i);
    // And again, through the recycled storage.
    for (std::uint64_t i = 0; i < n; ++i) q.put(i * 3);
    for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(q.get(), i * 3);
}

// Small items travel through the ring of slots, bigger ones (and small ones once the ring of an
// unbounded queue is full) through the chunk stream; one producer's order holds across both.
TEST(Queues, RingAndChunkStreamKeepOrder) {
    mp::SimpleQueue<std::string> q;
    constexpr int n = 20'000;  // more than the unbounded ring's 8192 slots
    auto item = [](int i) {
        return i % 997 == 0 ? pattern(300 + i % 5000, static_cast<unsigned>(i)) : std::to_string(i);
    };
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < n; ++i) q.put(item(i));
        for (int i = 0; i < n; ++i) ASSERT_EQ(q.get(), item(i));
        EXPECT_TRUE(q.empty());
    }
}

// A bound above the ring's 65536 slots: the rest of the room is in the chunk stream.
TEST(Queues, BoundAboveTheRing) {
    constexpr std::int64_t max = 70'000;
    mp::Queue<std::int64_t> q(max);
    for (std::int64_t i = 0; i < max; ++i) q.put_nowait(i);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.qsize(), static_cast<std::size_t>(max));
    EXPECT_THROW(q.put_nowait(-1), mp::Full);
    EXPECT_THROW(q.put(-1, 10ms), mp::Full);
    EXPECT_EQ(q.get_nowait(), 0);
    q.put_nowait(max);
    for (std::int64_t i = 1; i <= max; ++i) ASSERT_EQ(q.get_nowait(), i);
    EXPECT_THROW(q.get_nowait(), mp::Empty);
}

TEST(Queues, ItemsCarryingDescriptorsAreRefused) {
    mp::Queue<mp::Event> q;
    mp::Event e;
    EXPECT_THROW(q.put(e), mp::UsageError);
    EXPECT_TRUE(q.empty());
}

TEST(Queues, JoinableTaskDoneTooMany) {
    mp::JoinableQueue<int> q;
    EXPECT_THROW(q.task_done(), mp::UsageError);
    q.join();  // nothing unfinished
    q.put(1);
    q.put(2);
    (void)q.get();
    q.task_done();
    (void)q.get();
    std::thread t([&] { q.task_done(); });
    q.join();
    t.join();
    EXPECT_THROW(q.task_done(), mp::UsageError);
}

TEST(Queues, ThreadsManyProducersAndConsumers) {
    mp::Queue<std::uint64_t> q(64);
    constexpr std::uint64_t per = 20'000;
    std::vector<std::thread> ts;
    std::vector<std::vector<std::uint64_t>> got(4);
    for (std::uint64_t p = 0; p < 4; ++p)
        ts.emplace_back([&, p] {
            for (std::uint64_t i = 0; i < per; ++i) q.put(p << 32 | i);
        });
    for (int c = 0; c < 4; ++c)
        ts.emplace_back([&, c] {
            for (;;) {
                auto v = q.get();
                if (v == ~std::uint64_t{0}) return;
                got[static_cast<std::size_t>(c)].push_back(v);
            }
        });
    for (int i = 0; i < 4; ++i) ts[static_cast<std::size_t>(i)].join();
    for (int i = 0; i < 4; ++i) q.put(~std::uint64_t{0});
    for (std::size_t i = 4; i < ts.size(); ++i) ts[i].join();
    std::vector<std::uint64_t> all;
    for (auto& g : got) {
        std::map<std::uint64_t, std::uint64_t> last;
        for (auto v : g) {
            auto it = last.find(v >> 32);
            if (it != last.end()) {
                ASSERT_LT(it->second, v) << "FIFO per producer";
            }
            last[v >> 32] = v;
        }
        all.insert(all.end(), g.begin(), g.end());
    }
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), 4 * per);
    for (std::uint64_t p = 0; p < 4; ++p)
        for (std::uint64_t i = 0; i < per; ++i) ASSERT_EQ(all[p * per + i], p << 32 | i);
}

TEST(Queues, Item256MiB) {
    mp::Queue<std::string> q;
    const std::size_t n = std::size_t{256} << 20;
    std::string big = pattern(n, 9);
    q.put(big);
    q.put("small");
    std::string got = q.get();
    EXPECT_TRUE(got == big);
    EXPECT_EQ(q.get(), "small");
}

// ---- across processes ----------------------------------------------------------------------


constexpr std::uint64_t kStop = ~std::uint64_t{0};

void produce(mp::Queue<std::uint64_t> q, std::uint64_t id, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) q.put(id << 32 | i);
}

// Collects until the stop value; exits 5 if a producer's items came out of order here.
void consume(mp::Queue<std::uint64_t> q, mp::SimpleQueue<std::vector<std::uint64_t>> results) {
    std::vector<std::uint64_t> got;
    std::map<std::uint64_t, std::uint64_t> last;
    for (;;) {
        const std::uint64_t v = q.get();
        if (v == kStop) break;
        auto it = last.find(v >> 32);
        if (it != last.end() && it->second >= v) std::_Exit(5);
        last[v >> 32] = v;
        got.push_back(v);
    }
    results.put(got);
}

// A producer that puts three items on each queue and closes both: its puts after close fail
// with mp::UsageError (exit 3 or 4 otherwise), and nothing it put is lost.
void put_then_close(mp::Queue<int> q, mp::SimpleQueue<int> s) {
    for (int i = 0; i < 3; ++i) {
        q.put(i);
        s.put(i);
    }
    q.close();
    s.close();
    if (!q.closed() || !s.closed()) std::_Exit(2);
    try {
        q.put(9);
        std::_Exit(3);
    } catch (const mp::UsageError&) {
    }
    try {
        s.put(9);
        std::_Exit(4);
    } catch (const mp::UsageError&) {
    }
}

TEST_P(QueuesP, CloseInAProducerLeavesItsItemsForTheConsumer) {
    mp::Queue<int> q;
    mp::SimpleQueue<int> s;
    mp::Process p = start(put_then_close, q, s);
    join_ok(p);
    EXPECT_FALSE(q.closed());  // closing is the producer's, for its own handles
    EXPECT_FALSE(s.closed());
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(q.get(30s), i);
        EXPECT_EQ(s.get(), i);
    }
    EXPECT_TRUE(q.empty());
    EXPECT_TRUE(s.empty());
}

TEST_P(QueuesP, FourProducersFourConsumersEveryItemOnce) {
    mp::Queue<std::uint64_t> q;
    mp::SimpleQueue<std::vector<std::uint64_t>> results;
    std::vector<mp::Process> producers, consumers;
    for (std::uint64_t c = 0; c < 4; ++c) consumers.push_back(start(consume, q, results));
    for (std::uint64_t p = 0; p < 4; ++p) producers.push_back(start(produce, q, p, kPerProducer));
    for (auto& p : producers) join_ok(p);
    for (int c = 0; c < 4; ++c) q.put(kStop);
    std::vector<std::uint64_t> all;
    for (int c = 0; c < 4; ++c) {
        auto part = results.get();
        all.insert(all.end(), part.begin(), part.end());
    }
    for (auto& c : consumers) join_ok(c);
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), 4 * kPerProducer);
    for (std::uint64_t p = 0; p < 4; ++p)
        for (std::uint64_t i = 0; i < kPerProducer; ++i)
            ASSERT_EQ(all[p * kPerProducer + i], p << 32 | i) << "missing or duplicated";
    EXPECT_TRUE(q.empty());
}

void put_later(mp::Queue<std::string> q, mp::Event go) {
    if (!go.wait(30s)) std::_Exit(3);
    q.put("late");
}

TEST_P(QueuesP, TimeoutsAcrossProcesses) {
    mp::Queue<std::string> q;
    mp::Event go;
    auto p = start(put_later, q, go);
    EXPECT_THROW(q.get(30ms), mp::Empty);
    go.set();
    EXPECT_EQ(q.get(30s), "late");
    join_ok(p);
}

void fill_bounded(mp::Queue<int> q, int n) {
    for (int i = 0; i < n; ++i) q.put(i);  // blocks while the queue holds 3
    try {
        q.put_nowait(-1);
    } catch (const mp::Full&) {
        std::_Exit(0);
    }
    std::_Exit(7);
}

TEST_P(QueuesP, BoundedAcrossProcesses) {
    mp::Queue<int> q(3);
    auto p = start(fill_bounded, q, 6);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(q.get(30s), i);
    // The child's last three puts fill the queue again; its put_nowait must then see Full.
    join_ok(p);
    EXPECT_TRUE(q.full());
    for (int i = 3; i < 6; ++i) EXPECT_EQ(q.get_nowait(), i);
    EXPECT_THROW(q.get_nowait(), mp::Empty);
}

void work_and_mark(mp::JoinableQueue<int> q, mp::Queue<int> sums) {
    int sum = 0;
    for (;;) {
        const int v = q.get();
        if (v < 0) {
            q.task_done();
            break;
        }
        sum += v;
        q.task_done();
    }
    sums.put(sum);
}

void task_done_too_many(mp::JoinableQueue<int> q) {
    mp::test::exit_by_usage_error([&] { q.task_done(); }, 8);
}

TEST_P(QueuesP, JoinableJoinWithSeveralConsumers) {
    mp::JoinableQueue<int> q;
    mp::Queue<int> sums;
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(work_and_mark, q, sums));
    int expect = 0;
    for (int i = 1; i <= 300; ++i) {
        q.put(i);
        expect += i;
    }
    for (int i = 0; i < 3; ++i) q.put(-1);
    q.join();  // returns once all 303 items are done
    EXPECT_TRUE(q.empty());
    int total = 0;
    for (int i = 0; i < 3; ++i) total += sums.get(30s);
    EXPECT_EQ(total, expect);
    for (auto& p : ps) join_ok(p);
    auto bad = start(task_done_too_many, q);
    join_ok(bad);
}

void echo_big(mp::Queue<std::string> in, mp::Queue<std::string> out) {
    std::string s = in.get();
    std::reverse(s.begin(), s.end());
    out.put(s);
}

// Under AddressSanitizer every byte copied is checked, and 256 MiB out and back (through a
// forkserver child, on a loaded 2-core machine) took 68 s of CTest's 90 s limit; under
// ThreadSanitizer 36 to 55 s per start method, most of the TSan step. 64 MiB is still an
// extent of its own in the arena, the path this test is about.
constexpr std::size_t kBigItem =
    (mp::test::asan || mp::test::tsan ? 64 : 256) * (std::size_t{1} << 20);

TEST_P(QueuesP, Items256MiBAndMixedSizes) {
    mp::Queue<std::string> in, out;
    auto p = start(echo_big, in, out);
    std::string big = pattern(kBigItem, 3);
    in.put(big);
    std::string back = out.get(60s);
    std::reverse(big.begin(), big.end());
    EXPECT_TRUE(back == big);
    join_ok(p);
}

void put_mixed(mp::SimpleQueue<std::string> q) {
    const auto sizes = mixed_sizes();
    for (unsigned r = 0; r < 4; ++r)
        for (std::size_t i = 0; i < sizes.size(); ++i)
            q.put(pattern(sizes[i], static_cast<unsigned>(i * 10 + r)));
}

TEST_P(QueuesP, MixedSizesAcrossProcessesInOrder) {
    mp::SimpleQueue<std::string> q;
    auto a = start(put_mixed, q);
    const auto sizes = mixed_sizes();
    for (unsigned r = 0; r < 4; ++r)
        for (std::size_t i = 0; i < sizes.size(); ++i)
            ASSERT_EQ(q.get(), pattern(sizes[i], static_cast<unsigned>(i * 10 + r)));
    join_ok(a);
    EXPECT_TRUE(q.empty());
}


INSTANTIATE_TEST_SUITE_P(StartMethods, QueuesP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
