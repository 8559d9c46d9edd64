// Queue faults across real processes, once per start method: a producer SIGKILLed right after
// put, a consumer killed inside get or while waiting (what the survivors see, and no shared
// memory left behind), and queue memory overwritten by another process (mp::ProcessError, never
// a crash or a hang). The queues at work are in queues_test.cpp.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <thread>
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

// Names in /dev/shm that mention one of the pids (what a named segment of theirs would be
// called); other programs on the machine may come and go there meanwhile.
std::set<std::string> shm_entries_of(std::vector<pid_t> pids) {
    std::set<std::string> out;
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d)) {
            const std::string n = e->d_name;
            for (pid_t p : pids)
                if (n.find(std::to_string(p)) != std::string::npos) out.insert(n);
        }
        ::closedir(d);
    }
    return out;
}

// ---- killed producers and consumers -----------------------------------------------------

void put_then_die(mp::Queue<std::string> q, int n) {
    for (int i = 0; i < n; ++i)
        q.put(pattern(mixed_sizes()[static_cast<std::size_t>(i) % mixed_sizes().size()],
                      static_cast<unsigned>(i)));
    ::kill(::getpid(), SIGKILL);
}

TEST_P(QueuesP, ProducerKilledRightAfterPut) {
    mp::Queue<std::string> q;
    constexpr int n = 50;
    auto p = start(put_then_die, q, n);
    const pid_t child = *p.pid();
    p.join();
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
    EXPECT_EQ(q.qsize(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        ASSERT_EQ(q.get(),
                  pattern(mixed_sizes()[static_cast<std::size_t>(i) % mixed_sizes().size()],
                          static_cast<unsigned>(i)));
    EXPECT_THROW(q.get_nowait(), mp::Empty);
    EXPECT_TRUE(shm_entries_of({child, ::getpid()}).empty());
}

void put_one_and_hang(mp::Queue<int> q, mp::Event done) {
    q.put(1);
    done.set();
    for (;;) ::pause();
}

TEST_P(QueuesP, ProducerKilledByParentAfterPut) {
    mp::Queue<int> q;
    mp::Event done;
    auto p = start(put_one_and_hang, q, done);
    ASSERT_TRUE(done.wait(30s));
    p.kill();
    p.join();
    EXPECT_EQ(q.get(30s), 1);
}

// A type whose decoding kills the decoding process when asked to: a consumer dies in the
// middle of get(), holding the consumers' mutex, with the item half read.
bool g_die_in_get = false;

struct Fragile {
    int v = 0;
    std::string pad;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(v, pad);
        if constexpr (Ar::is_loading) {
            if (g_die_in_get && v == 42) ::kill(::getpid(), SIGKILL);
        }
    }
};

void consume_and_die(mp::Queue<Fragile> q) {
    g_die_in_get = true;
    for (;;) (void)q.get();
}

void get_after_death(mp::Queue<Fragile> q, mp::Queue<int> out) {
    for (int i = 0; i < 3; ++i) out.put(q.get(30s).v);
}

TEST_P(QueuesP, ConsumerKilledInsideGet) {
    for (const std::size_t pad : {std::size_t{8}, std::size_t{1} << 20}) {  // inline and extent
        mp::Queue<Fragile> q;
        q.put({41, std::string(pad, 'a')});
        q.put({42, std::string(pad, 'b')});
        q.put({43, std::string(pad, 'c')});
        auto p = start(consume_and_die, q);
        p.join();
        EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
        // 41 went to the dead consumer; 42 was being read: it is still at the head.
        Fragile f = q.get(30s);
        EXPECT_EQ(f.v, 42);
        EXPECT_EQ(f.pad, std::string(pad, 'b'));
        EXPECT_EQ(q.get(30s).v, 43);
        // The queue works on, for other processes too.
        mp::Queue<int> out;
        for (int i = 0; i < 3; ++i) q.put({i, std::string(pad, 'x')});
        auto c = start(get_after_death, q, out);
        join_ok(c);
        for (int i = 0; i < 3; ++i) EXPECT_EQ(out.get(30s), i);
    }
}

void block_in_get(mp::Queue<int> q, mp::Event started) {
    started.set();
    (void)q.get();
    std::_Exit(6);
}

TEST_P(QueuesP, ConsumerKilledWhileWaiting) {
    mp::Queue<int> q;
    mp::Event started;
    auto p = start(block_in_get, q, started);
    ASSERT_TRUE(started.wait(30s));
    std::this_thread::sleep_for(50ms);  // let it reach its futex sleep (not a timing assertion)
    p.kill();
    p.join();
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
    q.put(7);
    EXPECT_EQ(q.get(30s), 7);
}

// ---- corrupt shared memory -----------------------------------------------------------------
// Any process holding a queue can write any byte of its memory. What another process then sees
// is mp::ProcessError ("queue memory is corrupt"): never a crash, never a hang.

namespace ql = mp::detail::queue_layout;

// In a child: writes the `width` low bytes of `value` at `offset` of the queue's memory.
void scribble(mp::Queue<std::string> q, std::uint64_t offset, std::uint64_t value, int width) {
    mp::Encoder e;
    e(q);
    auto map = mp::sys::Mapping::map_shared(e.fds().at(0), offset + 8);
    std::memcpy(map.data() + offset, &value, static_cast<std::size_t>(width));
}

void expect_corrupt(const std::function<void()>& f, const char* what) {
    try {
        f();
        ADD_FAILURE() << what << ": no error";
    } catch (const mp::ProcessError& e) {
        EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos)
            << what << ": " << e.what();
    }
}

struct HeaderCase {
    const char* name;
    std::uint64_t offset;
    std::uint64_t value;
};

TEST_P(QueuesP, CorruptHeaderGivesProcessError) {
    const HeaderCase cases[] = {
        {"ring_cap = 0", offsetof(ql::Shared, ring_cap), 0},
        {"ring_cap huge", offsetof(ql::Shared, ring_cap), std::uint64_t{1} << 50},
        {"ring_off beyond the span", offsetof(ql::Shared, ring_off), std::uint64_t{1} << 45},
        {"ring_mask", offsetof(ql::Shared, ring_mask), 3},
        {"maxsize negative", offsetof(ql::Shared, maxsize), ~std::uint64_t{0}},
        {"magic", offsetof(ql::Shared, magic), 0},
    };
    for (const auto& c : cases) {
        mp::Queue<std::string> q;
        q.put("x");
        auto p = start(scribble, q, c.offset, c.value, 8);
        join_ok(p);
        // This process attached before: its copy of the header keeps it safe; the change is seen.
        expect_corrupt([&] { (void)q.get_nowait(); }, c.name);
        expect_corrupt([&] { q.put_nowait("y"); }, c.name);
        expect_corrupt([&] { (void)q.qsize(); }, c.name);
        // Attaching anew (decoding the handle) checks the header.
        auto pipe = mp::Pipe();
        pipe.first.send(q);
        expect_corrupt([&] { (void)pipe.second.recv<mp::Queue<std::string>>(); }, c.name);
    }
}

struct SlotCase {
    const char* name;
    bool big_first;        // a big item first: the chunk stream holds items (small ones follow)
    std::uint64_t offset;  // within slot 0's state word
    std::uint64_t value;   // one byte
};

TEST_P(QueuesP, CorruptSlotStateGivesProcessError) {
    const SlotCase cases[] = {
        {"state 3, chunk stream in use", true, 0, 3},
        {"state 3", false, 0, 3},
        {"writer TID without writing", false, 1, 0x40},
        {"position of another slot", false, 3, 0x01},
        {"position of another slot, chunk stream in use", true, 3, 0x01},
    };
    for (const auto& c : cases) {
        mp::Queue<std::string> q;
        if (c.big_first) q.put(std::string(40'000, 'b'));
        auto p = start(scribble, q, ql::slot_offset(0) + c.offset, c.value, 1);
        join_ok(p);
        expect_corrupt([&] { (void)q.get_nowait(); }, c.name);
        // While the chunk stream holds items, small items go there too: put does not look.
        if (!c.big_first) expect_corrupt([&] { q.put_nowait("y"); }, c.name);
    }
}

INSTANTIATE_TEST_SUITE_P(StartMethods, QueuesP, ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
