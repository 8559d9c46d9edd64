// Shipping calls by identity in this process: what ships (checked at compile time) and what
// comes back, with targets in the executable, in a linked shared library, in a library only
// dlopen'ed at run time, and in a library without a build id; and why what cannot ship does not.
// Across fork and exec: callable_exec_test.cpp; forged and corrupt packages:
// callable_forged_test.cpp.
#include <dlfcn.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "callable_lib.hpp"
#include "helpers/callable_targets.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "sys/io.hpp"

namespace {

using namespace mp::test;  // the shared targets and the protocol names

// ---- targets (internal linkage on purpose: identity does not need exported symbols) ------

std::string shout(std::string s) { return s + "!"; }
struct NotStandard : std::exception {
    const char* what() const noexcept override { return "a custom failure"; }
};
int always_custom(int) { throw NotStandard(); }
int last_call_result = 0;
void record(int x) { last_call_result = x; }
void takes_unique(std::unique_ptr<int>) {}
void takes_ptr(int, const int*) {}
void add_one_in_place(int& x) {
    ++x;
    last_call_result = x;
}
std::string consume(std::string&& s) { return std::move(s) + "."; }

// ---- what ships, at compile time ----------------------------------------------------------

using StringCapture = decltype([s = std::string("x")](int) { return s.size(); });
using IntCapture = decltype([k = 1](int x) { return k + x; });
using NoCapture = decltype([](int x) { return x; });

static_assert(mp::ShippableCall<decltype(square), int>);
static_assert(mp::ShippableCall<int (*)(int), int>);
static_assert(mp::ShippableCall<NoCapture, int>);
static_assert(mp::ShippableCall<IntCapture, int>);
static_assert(mp::ShippableCall<Affine, int>);
static_assert(mp::ShippableCall<Prefixer, std::string>);
static_assert(
    mp::ShippableCall<decltype(shout), const char (&)[3]>);  // a literal becomes std::string
static_assert(!mp::ShippableCall<StringCapture, int>);
static_assert(!mp::ShippableCall<std::function<int(int)>, int>);
static_assert(!mp::ShippableCall<decltype(square), std::string>);  // not invocable
static_assert(!mp::ShippableCall<decltype(takes_ptr), int, const int*>);
static_assert(!mp::ShippableCall<decltype(takes_unique), std::unique_ptr<int>>);
static_assert(mp::ShippableCall<decltype(add_one_in_place), int>);  // binds to the child's copy
static_assert(mp::ShippableCall<decltype(consume), std::string>);   // moved in
static_assert(!mp::ShippableCall<int Affine::*, Affine>);
static_assert(mp::is_shippable_callable_v<decltype(record), int>);
static_assert(mp::ShippableTask<decltype(join), std::vector<std::string>, std::string>);
static_assert(mp::ShippableCall<const char* (*)(int), int>);
static_assert(!mp::ShippableTask<const char* (*)(int), int>);  // the result cannot come back
static_assert(std::is_same_v<mp::detail::task_result_t<decltype(shout), std::string>, std::string>);

// ---- in this process ----------------------------------------------------------------------

TEST(CallableInProcess, FunctionPointerTask) {
    EXPECT_EQ(run_here<int>(package_task(square, 12)), 144);
    EXPECT_EQ(run_here<int>(package_task(&square, -3)), 9);
}

TEST(CallableInProcess, ContainersAndStringLiterals) {
    EXPECT_EQ(run_here<std::string>(package_task(join, std::vector<std::string>{"a", "b", "c"},
                                                 "-")),
              "a-b-c");
    EXPECT_EQ(run_here<std::string>(package_task(shout, "hey")), "hey!");
}

TEST(CallableInProcess, CapturelessLambdaSendsNoClosureBytes) {
    auto twice = [](int x) { return 2 * x; };
    const ShippedCall a = package_task(twice, 21);
    EXPECT_EQ(run_here<int>(a), 42);
    // Same thunk and argument: the closure adds nothing to the bytes, so a function pointer
    // (which carries a second identity) is strictly longer.
    const ShippedCall b = package_task(square, 21);
    EXPECT_LT(a.bytes.size(), b.bytes.size());
}

TEST(CallableInProcess, LambdaWithTriviallyCopyableCaptures) {
    int k = 7;
    double offset = 0.5;
    auto f = [k, offset](int x) { return k * x + offset; };
    EXPECT_DOUBLE_EQ(run_here<double>(package_task(f, 3)), 21.5);
}

TEST(CallableInProcess, FunctionObjects) {
    EXPECT_EQ(run_here<int>(package_task(Affine{3, 4}, 5)), 19);
    EXPECT_EQ(run_here<std::string>(package_task(Prefixer{"pre-"}, std::string("fix"))), "pre-fix");
}

TEST(CallableInProcess, VoidTaskAndCall) {
    last_call_result = 0;
    run_here<void>(package_task(record, 5));
    EXPECT_EQ(last_call_result, 5);
    auto pkg = package_call(record, 6);
    ASSERT_TRUE(pkg.call) << pkg.why_not;
    EXPECT_TRUE(pkg.why_not.empty());
    run_shipped_call(pkg.call->bytes, {});
    EXPECT_EQ(last_call_result, 6);
}

TEST(CallableInProcess, ReferenceParametersBindToTheReceiversCopies) {
    last_call_result = 0;
    int x = 41;
    run_here<void>(package_task(add_one_in_place, x));
    EXPECT_EQ(last_call_result, 42);
    EXPECT_EQ(x, 41) << "the sender's value is untouched";
    EXPECT_EQ(run_here<std::string>(package_task(consume, std::string("moved"))), "moved.");
}

TEST(CallableInProcess, CallOfANonVoidFunctionDiscardsTheResult) {
    auto pkg = package_call(shout, std::string("x"));
    ASSERT_TRUE(pkg.call) << pkg.why_not;
    run_shipped_call(pkg.call->bytes, {});
}

TEST(CallableInProcess, CallRethrowsWhatTheTargetThrows) {
    auto pkg = package_call(always_invalid, 3);
    ASSERT_TRUE(pkg.call);
    EXPECT_THROW(run_shipped_call(pkg.call->bytes, {}), std::invalid_argument);
}

TEST(CallableInProcess, TaskExceptionsComeBackAsTheSameStandardType) {
    try {
        run_here<int>(package_task(always_invalid, 3));
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "bad value 3");
    }
    EXPECT_THROW(run_here<int>(package_task(callable_lib::throw_out_of_range, 9)),
                 std::out_of_range);
    try {
        run_here<int>(package_task(always_custom, 1));
        ADD_FAILURE() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("NotStandard"), std::string::npos) << e.type_name();
        EXPECT_EQ(e.remote_what(), "a custom failure");
    }
}

TEST(CallableInProcess, TaskResultAppendsToExistingOutput) {
    mp::Encoder out;
    out(std::uint32_t{77});
    run_shipped_task(package_task(square, 4).bytes, {}, out);
    std::span<const std::byte> all(out.bytes());
    EXPECT_EQ(decode_task_result<int>(all.subspan(sizeof(std::uint32_t))), 16);
}

TEST(CallableInProcess, DescriptorsTravelBesideTheBytes) {
    auto pipe = mp::sys::make_pipe();
    PipeEnd end{pipe.write.dup()};
    const ShippedCall call = package_task(write_to, end, std::string("ping"));
    ASSERT_EQ(call.fds.size(), 1u);
    EXPECT_EQ(call.fds[0], end.fd.get());
    std::vector<UniqueFd> received;
    received.push_back(end.fd.dup());
    mp::Encoder out;
    run_shipped_task(call.bytes, received, out);
    EXPECT_EQ(decode_task_result<int>(out.bytes()), 4);
    EXPECT_FALSE(received[0]) << "the decoder took the descriptor";
    char got[4];
    ASSERT_EQ(mp::sys::read_full(pipe.read.get(), got, 4), 4u);
    EXPECT_EQ(std::string(got, 4), "ping");
}

TEST(CallableInProcess, TargetsInALinkedSharedLibrary) {
    EXPECT_EQ(run_here<int>(package_task(callable_lib::triple, 14)), 42);
    EXPECT_EQ(run_here<std::string>(package_task(callable_lib::greet, "lib")), "hello, lib");
    // Packaged inside the library: the thunk and the closure type are the library's.
    EXPECT_EQ(run_here<int>(callable_lib::package_scaled_sum({1, 2, 3}, 10)), 60);
    auto info = mp::detail::module_of(mp::detail::code_address(&callable_lib::triple));
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->is_main);
    EXPECT_TRUE(info->has_build_id);
    EXPECT_NE(info->path.find("libmp_callable_testlib"), std::string::npos) << info->path;
}

TEST(CallableInProcess, ModuleWithoutBuildIdIsIdentifiedByFile) {
    auto info = mp::detail::module_of(mp::detail::code_address(&callable_nobid_negate));
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->has_build_id) << info->id;
    EXPECT_NE(info->id.find("file hash"), std::string::npos);
    EXPECT_EQ(run_here<int>(package_task(callable_nobid_negate, 5)), -5);
}

TEST(CallableInProcess, MainExecutableHasABuildId) {
    auto info = mp::detail::module_of(mp::detail::code_address(&square));
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->is_main);
    EXPECT_TRUE(info->has_build_id) << info->id;
    EXPECT_EQ(info->id_bytes.size(), 20u) << "GNU ld's default sha1 build id";
}

TEST(CallableInProcess, UnloadedPluginIsLoadedAgainByPath) {
    const Plugin plugin = open_plugin();
    ASSERT_NE(plugin.handle, nullptr) << ::dlerror();
    ASSERT_TRUE(plugin.cube && plugin.package);
    const ShippedCall by_pointer = package_task(plugin.cube, 3);  // thunk here, target in plugin
    ShippedCall from_plugin;
    plugin.package(5, 100, &from_plugin);  // thunk and closure in the plugin
    EXPECT_EQ(run_here<int>(by_pointer), 27);
    EXPECT_EQ(run_here<long>(from_plugin), 105);
    ::dlclose(plugin.handle);
    if (plugin_loaded())
        GTEST_SKIP() << "an earlier test in this process left the plugin loaded (ctest runs each "
                        "test alone, where this checks the reload)";
    EXPECT_EQ(run_here<int>(by_pointer), 27);
    EXPECT_EQ(run_here<long>(from_plugin), 105);
    EXPECT_TRUE(plugin_loaded()) << "the resolver loaded the plugin by path";
}

TEST(CallableInProcess, ConcurrentPackagingAndResolution) {
    // Threads identify and resolve at once while another loads and unloads a library (which
    // invalidates the module snapshot under them).
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([t, &wrong] {
            for (int i = 0; i < 300; ++i) {
                if (run_here<int>(package_task(square, t + i)) != (t + i) * (t + i)) ++wrong;
                if (run_here<int>(package_task(callable_lib::triple, i)) != 3 * i) ++wrong;
            }
        });
    }
    std::thread loader([&stop] {
        while (!stop) {
            if (void* h = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL)) ::dlclose(h);
        }
    });
    for (auto& th : threads) th.join();
    stop = true;
    loader.join();
    EXPECT_EQ(wrong.load(), 0);
}

// ---- what does not ship, and why ----------------------------------------------------------

TEST(CallableWhyNot, StdFunctionTarget) {
    std::function<int(int)> f = square;
    auto pkg = package_call(f, 2);
    EXPECT_FALSE(pkg.call);
    EXPECT_NE(pkg.why_not.find("the target (type std::function<int (int)>, a std::function"),
              std::string::npos)
        << pkg.why_not;
    EXPECT_NE(pkg.why_not.find("use the fork start method or pass the data as an argument"),
              std::string::npos);
}

TEST(CallableWhyNot, LambdaCapturingAString) {
    std::string prefix = "p";
    auto f = [prefix](int x) { return prefix + std::to_string(x); };
    auto pkg = package_call(f, 2);
    EXPECT_FALSE(pkg.call);
    EXPECT_NE(pkg.why_not.find("a lambda capturing a value that is not trivially copyable"),
              std::string::npos)
        << pkg.why_not;
    EXPECT_NE(pkg.why_not.find("cannot be shipped to a process started with spawn or forkserver"),
              std::string::npos);
}

TEST(CallableWhyNot, ArgumentThatCannotBeEncoded) {
    auto pkg = package_call(takes_unique, std::make_unique<int>(1));
    EXPECT_FALSE(pkg.call);
    EXPECT_NE(pkg.why_not.find("argument 1 (type std::unique_ptr<int"), std::string::npos)
        << pkg.why_not;
    EXPECT_NE(pkg.why_not.find("cannot be encoded"), std::string::npos);

    const int x = 1;
    pkg = package_call(takes_ptr, 1, &x);
    EXPECT_NE(pkg.why_not.find("argument 2 (type int const*) cannot be encoded: a raw pointer"),
              std::string::npos)
        << pkg.why_not;
}

TEST(CallableWhyNot, NotInvocableAndNullTarget) {
    auto pkg = package_call(square, std::string("x"));
    EXPECT_FALSE(pkg.call);
    EXPECT_NE(pkg.why_not.find("cannot be called with arguments (std::string)"), std::string::npos)
        << pkg.why_not;
    int (*null_fn)(int) = nullptr;
    pkg = package_call(null_fn, 1);
    EXPECT_FALSE(pkg.call);
    EXPECT_EQ(pkg.why_not, "the target is a null function pointer");
    EXPECT_THROW(package_task(null_fn, 1), mp::UsageError);
}

}  // namespace
