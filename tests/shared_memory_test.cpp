// SharedMemory across real processes, and the resource tracker that unlinks what a program
// created and left behind (also after SIGKILL).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "helpers/shm_leftovers.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/process.hpp"
#include "multiproc/shared_memory.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/synchronize.hpp"
#include "resource_tracker.hpp"

namespace {

// At the end of the binary: no /dev/shm segment of this binary's processes remains.
[[maybe_unused]] const bool g_shm_check = mp::test::install_shm_leftover_check();

using namespace std::chrono_literals;

static_assert(mp::is_shippable_v<mp::SharedMemory>);

bool exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

bool gone_within(const std::string& name, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (exists(name)) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// Segments this process generated (mp_<pid>_...) that still exist.
std::string own_leftovers() {
    std::string out;
    const std::string prefix = "mp_" + std::to_string(::getpid()) + "_";
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d))
            if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0)
                out += std::string(e->d_name) + " ";
        ::closedir(d);
    }
    return out;
}

// The tracker's descriptor is opened once, before any test, so that the leak checker does
// not count it against the first test that creates a segment.
class TrackerEnv : public ::testing::Environment {
    void SetUp() override { mp::detail::resource_tracker::ensure_running(); }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new TrackerEnv);

class SharedMemoryTest : public ::testing::Test {
protected:
    void TearDown() override { EXPECT_EQ(own_leftovers(), "") << "segments left in /dev/shm"; }
};

TEST_F(SharedMemoryTest, CreateAttachCloseUnlink) {
    mp::SharedMemory shm("", true, 1000);
    EXPECT_EQ(shm.name().rfind("mp_", 0), 0u);
    EXPECT_EQ(shm.size(), 1000u);
    EXPECT_TRUE(exists(shm.name()));
    std::memcpy(shm.buf().data(), "hello", 5);
    {
        mp::SharedMemory other("/" + shm.name());  // a leading slash is accepted
        EXPECT_EQ(other.name(), shm.name());
        EXPECT_GE(other.size(), 1000u);
        EXPECT_EQ(std::memcmp(other.buf().data(), "hello", 5), 0);
        other.buf()[5] = std::byte{'!'};
        other.close();
        EXPECT_TRUE(other.buf().empty());
        other.close();  // idempotent
    }
    EXPECT_EQ(shm.buf()[5], std::byte{'!'});
    mp::SharedMemory copy = shm;  // a handle: same mapping
    EXPECT_EQ(copy.buf().data(), shm.buf().data());
    shm.unlink();
    EXPECT_FALSE(exists(shm.name()));
    EXPECT_EQ(shm.buf()[0], std::byte{'h'});  // still mapped after unlink
    shm.close();
    EXPECT_TRUE(copy.buf().empty());
    try {
        shm.unlink();
        ADD_FAILURE() << "unlink twice did not throw";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
}

TEST_F(SharedMemoryTest, ClearErrors) {
    const std::string missing = "mp_no_such_segment_" + std::to_string(::getpid());
    try {
        mp::SharedMemory m(missing);
        ADD_FAILURE() << "attached to a missing segment";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }
    EXPECT_THROW(mp::SharedMemory("", true, 0), std::invalid_argument);
    EXPECT_THROW(mp::SharedMemory("a/b", true, 10), std::invalid_argument);
    EXPECT_THROW(mp::SharedMemory("", false), std::invalid_argument);
    const std::string name = "mp_" + std::to_string(::getpid()) + "_explicit";
    mp::SharedMemory made(name, true, 64);
    EXPECT_EQ(made.name(), name);
    try {
        mp::SharedMemory again(name, true, 64);
        ADD_FAILURE() << "created an existing segment";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EEXIST);
    }
    made.unlink();
}

class SharedMemoryP : public mp::test::StartMethodTest {
protected:
    void TearDown() override { EXPECT_EQ(own_leftovers(), "") << "segments left in /dev/shm"; }
};

void attach_and_write(std::string name) {
    mp::SharedMemory shm(name);
    if (std::memcmp(shm.buf().data(), "parent", 6) != 0) std::exit(2);
    std::memcpy(shm.buf().data(), "child!", 6);
}

void write_through_handle(mp::SharedMemory shm) { shm.buf()[10] = std::byte{42}; }

TEST_P(SharedMemoryP, ChildAttachesByNameAndByHandle) {
    mp::SharedMemory shm("", true, 4096);
    std::memcpy(shm.buf().data(), "parent", 6);
    auto p = start(attach_and_write, shm.name());
    join_ok(p);
    EXPECT_EQ(std::memcmp(shm.buf().data(), "child!", 6), 0);
    auto q = start(write_through_handle, shm);
    join_ok(q);
    EXPECT_EQ(shm.buf()[10], std::byte{42});
    shm.unlink();
}

void create_report_and_hang(mp::RawArray<char> tracked, mp::RawArray<char> kept, mp::Event ready) {
    // This child plays the first process of a program: it must not share the test's tracker.
    mp::detail::resource_tracker::detach();
    mp::SharedMemory a("", true, 4096);
    mp::SharedMemory b("", true, 4096, /*track=*/false);
    std::memcpy(tracked.data(), a.name().c_str(), a.name().size() + 1);
    std::memcpy(kept.data(), b.name().c_str(), b.name().size() + 1);
    ready.set();
    for (;;) ::pause();
}

TEST_P(SharedMemoryP, CreatorKilledSegmentUnlinkedUnlessUntracked) {
    mp::RawArray<char> tracked(256), kept(256);
    mp::Event ready;
    auto p = start(create_report_and_hang, tracked, kept, ready);
    ASSERT_TRUE(ready.wait(30s));
    const std::string a(tracked.data()), b(kept.data());
    mp::test::note_shm_name(a);
    mp::test::note_shm_name(b);
    EXPECT_TRUE(exists(a));
    EXPECT_TRUE(exists(b));
    p.kill();
    p.join();
    EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGKILL));
    EXPECT_TRUE(gone_within(a, 20s)) << "/dev/shm/" << a << " survived its program";
    // The tracker unlinked `a` and exited: `b` (track = false) is still there.
    EXPECT_TRUE(exists(b));
    mp::SharedMemory(b).unlink();
}

// The end-of-binary check is not vacuous: a segment left behind (here on purpose, untracked)
// fails it, whether this process generated its name or a child reported it.
TEST(SharedMemoryLeftoverCheck, FailsOnALeftover) {
    std::string name;
    {
        mp::SharedMemory kept("", true, 64, /*track=*/false);
        name = kept.name();
    }
    ASSERT_TRUE(exists(name));
    EXPECT_NONFATAL_FAILURE(mp::test::expect_no_shm_leftovers(), name);
    mp::SharedMemory(name).unlink();
    mp::test::expect_no_shm_leftovers();

    const std::string foreign =
        "mp_1_check_" + std::to_string(::getpid());  // as if a child made it
    mp::SharedMemory other(foreign, true, 64, /*track=*/false);
    mp::test::note_shm_name(foreign);
    EXPECT_NONFATAL_FAILURE(mp::test::expect_no_shm_leftovers(), foreign);
    other.unlink();
    mp::test::expect_no_shm_leftovers();
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SharedMemoryP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

}  // namespace
