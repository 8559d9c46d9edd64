// Value, Array, RawValue, RawArray and the arenas under them, across real processes. Every
// behaviour test runs once per start method; handles travel as Process arguments.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <list>
#include <numeric>
#include <string>
#include <vector>

#include "helpers/shm_leftovers.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/process.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"

namespace {

// At the end of the binary: no /dev/shm segment of this binary's processes remains.
[[maybe_unused]] const bool g_shm_check = mp::test::install_shm_leftover_check();

using namespace std::chrono_literals;

// ---- compile-time contract -------------------------------------------------------------------

static_assert(mp::is_shippable_v<mp::Value<int>>);
static_assert(mp::is_shippable_v<mp::RawValue<double>>);
static_assert(mp::is_shippable_v<mp::Array<long>>);
static_assert(mp::is_shippable_v<mp::RawArray<char>>);
static_assert(std::is_same_v<decltype(std::declval<mp::Value<int>&>().value()), int&>);
static_assert(std::is_same_v<decltype(std::declval<mp::Array<int>&>()[0]), int&>);

// ---- single process -------------------------------------------------------------------------

TEST(SharedCtypes, ValueBasics) {
    mp::Value<int> v(41);
    v.value() += 1;
    EXPECT_EQ(v.value(), 42);
    EXPECT_EQ(v.get(), 42);
    v.set(7);
    EXPECT_EQ(v.value(), 7);
    mp::Value<int> copy = v;  // a handle: same memory
    copy.value() = 9;
    EXPECT_EQ(v.value(), 9);
    {
        std::scoped_lock lk(v.get_lock());
        v.value() *= 2;
    }
    EXPECT_EQ(copy.value(), 18);
    EXPECT_TRUE(v.acquire());
    v.release();
}

TEST(SharedCtypes, ValueWithoutLock) {
    mp::Value<double> v(1.5, mp::lock = false);
    EXPECT_EQ(v.value(), 1.5);
    EXPECT_THROW((void)v.get_lock(), mp::UsageError);
    v.set(2.5);
    EXPECT_EQ(v.get(), 2.5);
    mp::RawValue<long> r(5);
    r.value() -= 6;
    EXPECT_EQ(r.value(), -1);
    mp::RawValue<int> zero;
    EXPECT_EQ(zero.value(), 0);
}

TEST(SharedCtypes, ValueSharingAnExistingLock) {
    mp::RLock shared;
    mp::Value<int> a(1, shared), b(2, shared);
    std::scoped_lock lk(a.get_lock());
    EXPECT_TRUE(b.get_lock().try_lock());  // the same RLock, held by this thread
    b.get_lock().release();
}

TEST(SharedCtypes, ArrayConstruction) {
    mp::Array<int> zeros(5);
    EXPECT_EQ(zeros.size(), 5u);
    for (int x : zeros) EXPECT_EQ(x, 0);
    mp::Array<int> listed{1, 2, 3};
    EXPECT_EQ(listed.size(), 3u);
    EXPECT_EQ(listed[2], 3);
    std::vector<double> src{0.5, 1.5, 2.5, 3.5};
    mp::Array<double> from_vec(src);
    EXPECT_EQ(std::vector<double>(from_vec.begin(), from_vec.end()), src);
    std::list<int> l{4, 5, 6};
    mp::RawArray<long> from_list(l);
    EXPECT_EQ(from_list[0], 4);
    EXPECT_EQ(from_list.span().size(), 3u);
    mp::Array<int> unlocked(3, mp::lock = false);
    EXPECT_THROW((void)unlocked.get_lock(), mp::UsageError);
    EXPECT_THROW((void)listed.at(3), std::out_of_range);
    auto span = listed.span();
    std::iota(span.begin(), span.end(), 10);
    EXPECT_EQ(listed[0], 10);
    EXPECT_EQ(listed[2], 12);
    mp::Array<int> empty;
    EXPECT_EQ(empty.size(), 0u);
}

struct alignas(64) Padded {
    long counter;
};

TEST(SharedCtypes, AlignmentAndLargeBlocks) {
    mp::RawArray<Padded> pads(3);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(pads.data()) % 64, 0u);
    mp::RawArray<std::byte> big(3 << 20);  // larger than an arena: its own memfd
    EXPECT_EQ(big.size(), std::size_t{3} << 20);
    big[big.size() - 1] = std::byte{7};
    EXPECT_EQ(big[big.size() - 1], std::byte{7});
}

TEST(SharedCtypes, FreedBlocksAreReused) {
    void* first;
    {
        mp::RawValue<int> a(1);
        first = &a.value();
    }
    mp::RawValue<int> b(2);
    EXPECT_EQ(&b.value(), first);  // the block came back to the free list, then out again
    EXPECT_EQ(b.value(), 2);
}

TEST(SharedCtypes, CodecRoundTripIsTheSameMemory) {
    mp::Value<int> v(3);
    mp::Encoder e;
    e(v);
    std::vector<mp::detail::UniqueFd> fds;
    for (int fd : e.fds()) fds.push_back(mp::detail::UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)));
    auto back = mp::loads<mp::Value<int>>(e.bytes(), fds);
    back.value() = 77;
    EXPECT_EQ(v.value(), 77);
}

TEST(SharedCtypes, CorruptHandleIsDecodeError) {
    mp::RawValue<int> v(3);
    mp::Encoder e;
    e(v);
    std::vector<mp::detail::UniqueFd> none;
    EXPECT_THROW((void)mp::loads<mp::RawValue<int>>(e.bytes(), none), mp::DecodeError);
    auto bytes = e.bytes();
    std::vector<mp::detail::UniqueFd> fds;
    fds.push_back(mp::detail::UniqueFd(::fcntl(e.fds()[0], F_DUPFD_CLOEXEC, 0)));
    bytes[bytes.size() - 20] = std::byte{0xff};  // the block's offset
    EXPECT_THROW((void)mp::loads<mp::RawValue<int>>(bytes, fds), mp::DecodeError);
}

// ---- across processes ------------------------------------------------------------------------

class SharedCtypesP : public mp::test::StartMethodTest {};

void add_locked(mp::Value<long> v, int n) {
    for (int i = 0; i < n; ++i) {
        std::scoped_lock lk(v.get_lock());
        v.value() += 1;
    }
}

void add_raw(mp::RawValue<long> v, int n) {
    for (int i = 0; i < n; ++i) __atomic_fetch_add(&v.value(), 1, __ATOMIC_RELAXED);
}

TEST_P(SharedCtypesP, CounterUnderLockIsExact) {
    mp::Value<long> v(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(start(add_locked, v, 10'000));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(v.get(), 40'000);
}

// Value and Array guarded by a plain mp::Lock (Python's Value('l', 0, lock=Lock())).
void add_under_plain_lock(mp::Value<long, mp::Lock> v, mp::Array<int, mp::Lock> a, int n) {
    for (int i = 0; i < n; ++i) {
        std::scoped_lock lk(v.get_lock());
        v.value() += 1;
        a[0] += 1;
    }
}

TEST_P(SharedCtypesP, ValueAndArrayWithAPlainLock) {
    mp::Lock lock;
    mp::Value v(0L, lock);  // deduced: mp::Value<long, mp::Lock>
    static_assert(std::is_same_v<decltype(v), mp::Value<long, mp::Lock>>);
    mp::Array<int, mp::Lock> a(1, lock);  // the same lock guards both
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(start(add_under_plain_lock, v, a, 5'000));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(v.get(), 20'000);
    EXPECT_EQ(a[0], 20'000);
    // A plain Lock is not reentrant: held once, a second acquire without blocking fails.
    std::scoped_lock lk(v.get_lock());
    EXPECT_FALSE(a.get_lock().acquire(false));
    // get_obj(): the shared memory itself, without the lock.
    EXPECT_EQ(v.get_obj().value(), 20'000);
    EXPECT_EQ(a.get_obj().data(), a.data());
}

TEST_P(SharedCtypesP, RawValueIsSharedMemory) {
    mp::RawValue<long> v(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(start(add_raw, v, 10'000));
    for (auto& p : ps) join_ok(p);
    EXPECT_EQ(v.value(), 40'000);  // atomic increments: exact without a lock
}

void fill_part(mp::Array<int> a, int part, int parts) {
    for (std::size_t i = static_cast<std::size_t>(part); i < a.size();
         i += static_cast<std::size_t>(parts))
        a[i] = static_cast<int>(i) * 3;
}

void fill_raw(mp::RawArray<double> a) {
    for (auto& x : a) x = x * 2 + 1;
}

TEST_P(SharedCtypesP, ArrayWrittenByChildrenSeenByParent) {
    mp::Array<int> a(1000);
    mp::RawArray<double> r{1.0, 2.0, 3.0};
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(start(fill_part, a, i, 3));
    ps.push_back(start(fill_raw, r));
    for (auto& p : ps) join_ok(p);
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], static_cast<int>(i) * 3);
    EXPECT_EQ(r[0], 3.0);
    EXPECT_EQ(r[2], 7.0);
}

void drop_and_allocate(mp::RawValue<int> v, mp::RawValue<int> seen) {
    // The child allocates from the same arena (it maps it); its block must not alias v's.
    mp::RawValue<int> mine(123);
    seen.value() = (&mine.value() == &v.value()) ? -1 : 1;
}

TEST_P(SharedCtypesP, ChildAllocationsDoNotAlias) {
    mp::RawValue<int> v(5), seen(0);
    auto p = start(drop_and_allocate, v, seen);
    join_ok(p);
    EXPECT_EQ(seen.value(), 1);
    EXPECT_EQ(v.value(), 5);
}

void hold_then_die(mp::Value<long> v, mp::Event held) {
    v.get_lock().acquire();
    v.value() = -1;  // half-way through an update
    held.set();
    for (;;) ::pause();
}

TEST_P(SharedCtypesP, ValueLockHolderKilled) {
    mp::Value<long> v(10);
    mp::Event held;
    auto p = start(hold_then_die, v, held);
    ASSERT_TRUE(held.wait(30s));
    p.kill();
    p.join();
    bool died = false;
    try {
        v.get_lock().acquire();
    } catch (const mp::OwnerDied&) {
        died = true;
        v.value() = 10;  // repair
    }
    EXPECT_TRUE(died);
    v.get_lock().release();
    // The lock keeps working, across processes too.
    std::vector<mp::Process> ps;
    for (int i = 0; i < 2; ++i) ps.push_back(start(add_locked, v, 1000));
    for (auto& q : ps) join_ok(q);
    EXPECT_EQ(v.get(), 2010);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SharedCtypesP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
