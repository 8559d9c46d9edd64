#include "helpers/leak_check.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "multiproc/context.hpp"

namespace mp::test {
namespace {

std::set<std::string> open_fds() {
    std::set<std::string> out;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return out;
    int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.' || std::stoi(e->d_name) == self) continue;
        char target[512] = {};
        std::string path = std::string("/proc/self/fd/") + e->d_name;
        ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
        out.insert(std::string(e->d_name) + " -> " + (n > 0 ? std::string(target, n) : "?"));
    }
    ::closedir(d);
    return out;
}

// Children of this process that still exist (running or zombie), from /proc.
std::string live_children() {
    std::ostringstream out;
    const std::string me = std::to_string(::getpid());
    DIR* d = ::opendir("/proc/self/task");
    if (!d) return {};
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/children");
        std::string pid;
        while (f >> pid) out << pid << ' ';
    }
    ::closedir(d);
    return out.str();
}

class LeakCheck : public ::testing::EmptyTestEventListener {
    std::set<std::string> before_;
    void OnTestStart(const ::testing::TestInfo&) override { before_ = open_fds(); }
    void OnTestEnd(const ::testing::TestInfo&) override {
        // The forkserver is started on first use and kept for reuse, by design; each test
        // gets a fresh one, so that what it leaves behind is the test's own.
        mp::detail::stop_forkserver();
        // Descriptors and children can take a moment to go away (a reaper thread, a helper
        // server winding down); allow a short grace period before calling it a leak.
        std::string kids;
        std::set<std::string> leaked;
        for (int i = 0; i < 200; ++i) {
            kids = live_children();
            leaked.clear();
            for (auto& fd : open_fds())
                if (!before_.count(fd)) leaked.insert(fd);
            if (kids.empty() && leaked.empty()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::string fds;
        for (auto& fd : leaked) fds += "  " + fd + "\n";
        if (!leaked.empty()) ADD_FAILURE() << "test leaked descriptors:\n" << fds;
        if (!kids.empty()) ADD_FAILURE() << "test left child processes behind: " << kids;
    }
};

}  // namespace

void install_leak_check() { ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheck); }

}  // namespace mp::test
