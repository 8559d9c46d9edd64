// Shipping calls by identity across fork and across a real exec of
// this test binary (another address space, another load address under PIE/ASLR), with targets
// in the executable, in a linked shared library, in a library only dlopen'ed at run time, and
// in a library without a build id.
//
// The exec child: a test re-executes /proc/self/exe with MP_CALLABLE_CHILD_PACKAGE naming a
// file that holds a package. The static initializer `exec_child_entry` below sees the variable
// before main() (and before GoogleTest) runs, runs the package as a task, writes a report to the
// descriptor MP_CALLABLE_CHILD_OUT names, and _exit()s. Without the variable it does nothing, so
// no test exists only to be a child.
#include <fcntl.h>
#include <spawn.h>
#include <sys/personality.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "callable_lib.hpp"
#include "helpers/callable_targets.hpp"
#include "helpers/raw_child.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "sys/io.hpp"

extern char** environ;

namespace {

using namespace mp::test;  // the shared targets and the protocol names

// ---- the exec child -----------------------------------------------------------------------

std::vector<std::byte> read_file(const char* path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    if (!c.empty()) std::memcpy(b.data(), c.data(), c.size());
    return b;
}

// What a child reports: where its modules were loaded, whether the plugin was loaded before
// and after the call, and the task's result bytes.
struct ChildReport {
    std::uint64_t main_base = 0, lib_base = 0;
    bool plugin_before = false, plugin_after = false;
    std::vector<std::byte> result;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(main_base, lib_base, plugin_before, plugin_after, result);
    }
};

[[noreturn]] void child_main(const char* package_path) {
    int status = 0;
    try {
        const int out_fd = std::atoi(std::getenv("MP_CALLABLE_CHILD_OUT"));
        std::vector<UniqueFd> fds;
        if (const char* list = std::getenv("MP_CALLABLE_CHILD_FDS")) {
            for (const char* p = list; *p;) {
                char* end = nullptr;
                fds.emplace_back(static_cast<int>(std::strtol(p, &end, 10)));
                p = *end ? end + 1 : end;
            }
        }
        ChildReport r;
        r.main_base = mp::detail::module_of(mp::detail::code_address(&square))->base;
        r.lib_base = mp::detail::module_of(callable_lib::some_code_address())->base;
        r.plugin_before = plugin_loaded();
        const std::vector<std::byte> package = read_file(package_path);
        mp::Encoder out;
        try {
            run_shipped_task(package, fds, out);
        } catch (...) {
            mp::detail::encode_task_error(out, std::current_exception());
        }
        r.plugin_after = plugin_loaded();
        r.result = std::move(out.bytes());
        const std::vector<std::byte> bytes = mp::dumps(r);
        mp::sys::write_all(out_fd, bytes.data(), bytes.size());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "callable_test exec child: %s\n", e.what());
        status = 3;
    }
    std::fflush(nullptr);
    ::_exit(status);
}

[[maybe_unused]] const bool exec_child_entry = [] {
    if (const char* p = std::getenv("MP_CALLABLE_CHILD_PACKAGE")) child_main(p);
    return false;
}();

// Runs a package in a fresh exec of this binary; returns the child's report.
ChildReport run_in_exec(const ShippedCall& call) {
    char path[] = "/tmp/mp_callable_pkgXXXXXX";
    UniqueFd file(::mkostemp(path, O_CLOEXEC));
    if (!file) mp::throw_os_error("mkostemp");
    mp::sys::write_all(file.get(), call.bytes.data(), call.bytes.size());
    file.reset();
    auto out = mp::sys::make_pipe();

    constexpr int out_target = 100, first_fd_target = 101;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out.write.get(), out_target);
    std::string fd_list;
    for (std::size_t i = 0; i < call.fds.size(); ++i) {
        const int target = first_fd_target + static_cast<int>(i);
        posix_spawn_file_actions_adddup2(&fa, call.fds[i], target);
        fd_list += (i ? "," : "") + std::to_string(target);
    }
    std::vector<std::string> env_strings = {
        std::string("MP_CALLABLE_CHILD_PACKAGE=") + path,
        "MP_CALLABLE_CHILD_OUT=" + std::to_string(out_target),
        "MP_CALLABLE_CHILD_FDS=" + fd_list,
    };
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "MP_CALLABLE_CHILD_", 18) != 0) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    char arg0[] = "callable_test_child";
    char* argv[] = {arg0, nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    out.write.reset();
    if (rc != 0) {
        ::unlink(path);
        mp::throw_os_error("posix_spawn", rc);
    }
    mp::test::RawChild child(pid);
    const std::vector<std::byte> report = mp::test::read_to_eof(out.read.get());
    EXPECT_EQ(child.join(), 0) << "the exec child failed";
    ::unlink(path);
    return mp::loads<ChildReport>(report);
}

// Runs a package as a task in a forked child; returns the task's result bytes.
std::vector<std::byte> run_in_fork(const ShippedCall& call) {
    auto out = mp::sys::make_pipe();
    const pid_t pid = ::fork();
    if (pid < 0) mp::throw_os_error("fork");
    if (pid == 0) {
        int status = 0;
        try {
            out.read.reset();
            // The child's own copies of the descriptors: the originals belong to the objects
            // the parent still holds (and the child inherited).
            std::vector<UniqueFd> fds;
            for (int fd : call.fds) fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
            mp::Encoder result;
            try {
                run_shipped_task(call.bytes, fds, result);
            } catch (...) {
                mp::detail::encode_task_error(result, std::current_exception());
            }
            mp::sys::write_all(out.write.get(), result.bytes().data(), result.bytes().size());
        } catch (...) {
            status = 3;
        }
        ::_exit(status);
    }
    out.write.reset();
    mp::test::RawChild child(pid);
    std::vector<std::byte> bytes = mp::test::read_to_eof(out.read.get());
    EXPECT_EQ(child.join(), 0) << "the fork child failed";
    return bytes;
}

bool aslr_enabled() {
    std::ifstream f("/proc/sys/kernel/randomize_va_space");
    int v = 0;
    f >> v;
    return v != 0 && (::personality(0xffffffff) & ADDR_NO_RANDOMIZE) == 0;
}

// ---- across fork --------------------------------------------------------------------------

TEST(CallableFork, TasksRunInAForkedChild) {
    EXPECT_EQ(decode_task_result<int>(run_in_fork(package_task(square, 9))), 81);
    int k = 4;
    EXPECT_EQ(decode_task_result<int>(run_in_fork(package_task([k](int x) { return k - x; }, 10))),
              -6);
    EXPECT_EQ(decode_task_result<std::string>(run_in_fork(package_task(callable_lib::greet,
                                                                       "fork"))),
              "hello, fork");
    EXPECT_THROW(decode_task_result<int>(run_in_fork(package_task(always_invalid, 1))),
                 std::invalid_argument);
}

TEST(CallableFork, DescriptorArgument) {
    auto pipe = mp::sys::make_pipe();
    PipeEnd end{pipe.write.dup()};
    const ShippedCall call = package_task(write_to, end, std::string("forked"));
    EXPECT_EQ(decode_task_result<int>(run_in_fork(call)), 6);
    end.fd.reset();
    pipe.write.reset();
    char got[16];
    EXPECT_EQ(std::string(got, mp::sys::read_full(pipe.read.get(), got, sizeof got)), "forked");
}

// ---- across exec: another address space, another load address -----------------------------

TEST(CallableExec, FunctionInTheExecutableAtAnotherLoadAddress) {
    const ChildReport r = run_in_exec(package_task(square, 11));
    EXPECT_EQ(decode_task_result<int>(r.result), 121);
    const auto here = mp::detail::module_of(mp::detail::code_address(&square))->base;
    std::printf("main executable base: parent %#zx, exec child %#zx\n",
                static_cast<std::size_t>(here), static_cast<std::size_t>(r.main_base));
    std::printf(
        "linked library base:  parent %#zx, exec child %#zx\n",
        static_cast<std::size_t>(mp::detail::module_of(callable_lib::some_code_address())->base),
        static_cast<std::size_t>(r.lib_base));
    if (aslr_enabled()) {
        EXPECT_NE(r.main_base, here) << "PIE + ASLR: the child maps the executable elsewhere";
        EXPECT_NE(r.lib_base, mp::detail::module_of(callable_lib::some_code_address())->base);
    }
}

TEST(CallableExec, LambdasAndFunctionObjects) {
    int k = 6;
    double offset = 0.25;
    auto f = [k, offset](int x) { return k * x + offset; };
    EXPECT_DOUBLE_EQ(decode_task_result<double>(run_in_exec(package_task(f, 2)).result), 12.25);
    EXPECT_EQ(
        decode_task_result<int>(run_in_exec(package_task([](int x) { return x + 1; }, 1)).result),
        2);
    EXPECT_EQ(decode_task_result<std::string>(run_in_exec(package_task(Prefixer{">"}, "x")).result),
              ">x");
    EXPECT_EQ(decode_task_result<int>(run_in_exec(package_task(Affine{2, 1}, 20)).result), 41);
}

TEST(CallableExec, TargetsInALinkedSharedLibrary) {
    EXPECT_EQ(decode_task_result<std::string>(
                  run_in_exec(package_task(callable_lib::greet, "exec")).result),
              "hello, exec");
    EXPECT_EQ(
        decode_task_result<int>(run_in_exec(callable_lib::package_scaled_sum({4, 5}, 3)).result),
        27);
    EXPECT_EQ(decode_task_result<int>(run_in_exec(package_task(callable_nobid_negate, 8)).result),
              -8);
}

TEST(CallableExec, TargetInAPluginTheChildMustLoad) {
    const Plugin plugin = open_plugin();
    ASSERT_NE(plugin.handle, nullptr) << ::dlerror();
    ASSERT_TRUE(plugin.cube && plugin.package);
    ShippedCall from_plugin;
    plugin.package(7, 1000, &from_plugin);
    const ShippedCall by_pointer = package_task(plugin.cube, 4);

    ChildReport r = run_in_exec(by_pointer);
    EXPECT_FALSE(r.plugin_before);
    EXPECT_TRUE(r.plugin_after);
    EXPECT_EQ(decode_task_result<int>(r.result), 64);
    r = run_in_exec(from_plugin);
    EXPECT_FALSE(r.plugin_before);
    EXPECT_EQ(decode_task_result<long>(r.result), 1007);

    // The child loads the plugin by path, then finds another build id than the sender's.
    std::vector<std::byte> plugin_id;
    {
        auto info = mp::detail::module_of(mp::detail::code_address(plugin.cube));
        ASSERT_TRUE(info);
        plugin_id = info->id_bytes;
    }
    ShippedCall forged = by_pointer;
    const std::size_t at = find_bytes(forged.bytes, plugin_id);
    ASSERT_NE(at, std::string::npos);
    forged.bytes[at] ^= std::byte{1};
    r = run_in_exec(forged);
    try {
        decode_task_result<int>(r.result);
        ADD_FAILURE() << "no exception";
    } catch (const mp::ProcessError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("binary mismatch: module "), std::string::npos) << what;
        EXPECT_NE(what.find("libmp_callable_plugin"), std::string::npos) << what;
    }
    ::dlclose(plugin.handle);
}

TEST(CallableExec, DescriptorArgumentAndExceptions) {
    auto pipe = mp::sys::make_pipe();
    PipeEnd end{pipe.write.dup()};
    const ChildReport r = run_in_exec(package_task(write_to, end, std::string("exec'd")));
    EXPECT_EQ(decode_task_result<int>(r.result), 6);
    end.fd.reset();
    pipe.write.reset();
    char got[16];
    EXPECT_EQ(std::string(got, mp::sys::read_full(pipe.read.get(), got, sizeof got)), "exec'd");

    EXPECT_THROW(decode_task_result<int>(run_in_exec(package_task(always_invalid, 2)).result),
                 std::invalid_argument);
    EXPECT_THROW(decode_task_result<int>(
                     run_in_exec(package_task(callable_lib::throw_out_of_range, 2)).result),
                 std::out_of_range);
}

TEST(CallableExec, MainExecutableMismatch) {
    const auto main_id = mp::detail::module_of(mp::detail::code_address(&square))->id_bytes;
    ShippedCall call = package_task(square, 3);
    const std::size_t at = find_bytes(call.bytes, main_id);
    ASSERT_NE(at, std::string::npos);
    call.bytes[at + 3] ^= std::byte{0x10};
    const ChildReport r = run_in_exec(call);
    try {
        decode_task_result<int>(r.result);
        ADD_FAILURE() << "no exception";
    } catch (const mp::ProcessError& e) {
        EXPECT_NE(std::string(e.what()).find("binary mismatch"), std::string::npos) << e.what();
    }
}

}  // namespace
