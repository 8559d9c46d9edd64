// Shipping calls by identity: in-process round trips, across fork, and across a real exec of
// this test binary (another address space, another load address under PIE/ASLR), with targets
// in the executable, in a linked shared library, in a library only dlopen'ed at run time, and
// in a library without a build id.
//
// The exec child: a test re-executes /proc/self/exe with MP_CALLABLE_CHILD_PACKAGE naming a
// file that holds a package. The static initializer `exec_child_entry` below sees the variable
// before main() (and before GoogleTest) runs, runs the package as a task, writes a report to the
// descriptor MP_CALLABLE_CHILD_OUT names, and _exit()s. Without the variable it does nothing, so
// no test exists only to be a child.
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "callable_lib.hpp"
#include "helpers/raw_child.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/synchronize.hpp"
#include "sys/io.hpp"

extern char** environ;

namespace {

using mp::detail::decode_task_result;
using mp::detail::package_call;
using mp::detail::package_task;
using mp::detail::run_shipped_call;
using mp::detail::run_shipped_task;
using mp::detail::ShippedCall;
using mp::detail::UniqueFd;

// ---- targets (internal linkage on purpose: identity does not need exported symbols) ------

int square(int x) { return x * x; }
std::string shout(std::string s) { return s + "!"; }
std::string join(std::vector<std::string> parts, std::string sep) {
    std::string out;
    for (auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}
int always_invalid(int x) { throw std::invalid_argument("bad value " + std::to_string(x)); }
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

// A function object that travels as its bytes.
struct Affine {
    int a, b;
    int operator()(int x) const { return a * x + b; }
};
// A function object that travels through the codec.
struct Prefixer {
    std::string prefix;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(prefix);
    }
    std::string operator()(std::string s) const { return prefix + s; }
};

// A handle: a descriptor that travels beside the bytes.
struct PipeEnd {
    UniqueFd fd;
    void save(mp::Encoder& e) const { e.add_fd(fd.get()); }
    void load(mp::Decoder& d) { fd = d.take_fd(); }
};
int write_to(PipeEnd end, std::string text) {
    mp::sys::write_all(end.fd.get(), text.data(), text.size());
    return static_cast<int>(text.size());
}

// ---- the exec child -----------------------------------------------------------------------

std::vector<std::byte> read_file(const char* path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    if (!c.empty()) std::memcpy(b.data(), c.data(), c.size());
    return b;
}

bool plugin_loaded() {
    void* h = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (h) ::dlclose(h);
    return h != nullptr;
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

template <class R>
R run_here(const ShippedCall& call) {
    mp::Encoder out;
    run_shipped_task(call.bytes, {}, out);
    return decode_task_result<R>(out.bytes());
}

bool aslr_enabled() {
    std::ifstream f("/proc/sys/kernel/randomize_va_space");
    int v = 0;
    f >> v;
    return v != 0 && (::personality(0xffffffff) & ADDR_NO_RANDOMIZE) == 0;
}

std::size_t find_bytes(const std::vector<std::byte>& hay, const std::vector<std::byte>& needle,
                       std::size_t from = 0) {
    auto it = std::search(hay.begin() + static_cast<std::ptrdiff_t>(from), hay.end(),
                          needle.begin(), needle.end());
    return it == hay.end() ? std::string::npos : static_cast<std::size_t>(it - hay.begin());
}

// ---- forging identities ----------------------------------------------------------------------
//
//   package  = magic(4) | thunk identity | target identity (function pointers) | arguments
//   identity = flags(1) kind(1) n(1) id(n) | path length(8) | path | offset(8)

std::size_t identity_size(const std::vector<std::byte>& b, std::size_t at) {
    const auto n = static_cast<std::size_t>(b.at(at + 2));
    std::uint64_t path = 0;
    std::memcpy(&path, b.data() + at + 3 + n, sizeof path);
    return 3 + n + 8 + static_cast<std::size_t>(path) + 8;
}

constexpr std::size_t thunk_at = 4;
std::size_t target_at(const std::vector<std::byte>& b) {
    return thunk_at + identity_size(b, thunk_at);
}

// Adds delta to the offset of the identity at `at`.
std::vector<std::byte> shift_offset(std::vector<std::byte> b, std::size_t at, std::int64_t delta) {
    const std::size_t pos = at + identity_size(b, at) - 8;
    std::uint64_t off = 0;
    std::memcpy(&off, b.data() + pos, sizeof off);
    off += static_cast<std::uint64_t>(delta);
    std::memcpy(b.data() + pos, &off, sizeof off);
    return b;
}

// The identity of a code address in the shared library at `path`, with the given id bytes.
std::vector<std::byte> library_identity(const std::string& path, std::vector<std::byte> id,
                                        std::uint64_t offset) {
    const std::uint8_t head[3] = {0, 1, static_cast<std::uint8_t>(id.size())};
    const std::uint64_t len = path.size();
    mp::Encoder e;
    e.write_bytes(head, sizeof head);
    e.write_bytes(id.data(), id.size());
    e.write_bytes(&len, sizeof len);
    e.write_bytes(path.data(), path.size());
    e.write_bytes(&offset, sizeof offset);
    return std::move(e.bytes());
}

// A package whose target identity is replaced by `target` (the call's target is a function
// pointer).
std::vector<std::byte> with_target(const std::vector<std::byte>& b,
                                   const std::vector<std::byte>& target) {
    const std::size_t at = target_at(b);
    std::vector<std::byte> out(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(at));
    out.insert(out.end(), target.begin(), target.end());
    out.insert(out.end(), b.begin() + static_cast<std::ptrdiff_t>(at + identity_size(b, at)),
               b.end());
    return out;
}

// square(3) whose target names the trace library with a build id that is not its own.
std::vector<std::byte> call_into_trace_library() {
    return with_target(package_task(square, 3).bytes,
                       library_identity(MP_CALLABLE_TRACE_PATH,
                                        std::vector<std::byte>(20, std::byte{0xab}), 0x1100));
}

bool trace_library_loaded() {
    void* h = ::dlopen(MP_CALLABLE_TRACE_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (h) ::dlclose(h);
    return h != nullptr;
}

// What running forged bytes as a task did: "ran", or the exception ("ProcessError: what").
std::string outcome_of(std::span<const std::byte> bytes) {
    try {
        mp::Encoder out;
        run_shipped_task(bytes, {}, out);
        return "ran";
    } catch (const mp::DecodeError& e) {
        return std::string("DecodeError: ") + e.what();
    } catch (const mp::ProcessError& e) {
        return std::string("ProcessError: ") + e.what();
    }
}

std::string hex_offset(const std::vector<std::byte>& b, std::size_t at) {
    std::uint64_t off = 0;
    std::memcpy(&off, b.data() + at + identity_size(b, at) - 8, sizeof off);
    char buf[32];
    std::snprintf(buf, sizeof buf, "offset %#llx in module ", static_cast<unsigned long long>(off));
    return buf;
}

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
    void* h = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << ::dlerror();
    auto cube = reinterpret_cast<int (*)(int)>(::dlsym(h, "callable_plugin_cube"));
    auto pack =
        reinterpret_cast<void (*)(int, long, ShippedCall*)>(::dlsym(h, "callable_plugin_package"));
    ASSERT_TRUE(cube && pack);
    const ShippedCall by_pointer = package_task(cube, 3);  // thunk here, target in the plugin
    ShippedCall from_plugin;
    pack(5, 100, &from_plugin);  // thunk and closure in the plugin
    EXPECT_EQ(run_here<int>(by_pointer), 27);
    EXPECT_EQ(run_here<long>(from_plugin), 105);
    ::dlclose(h);
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

// ---- hostile bytes ------------------------------------------------------------------------

TEST(CallableCorrupt, EveryTruncationIsADecodeError) {
    const ShippedCall call =
        package_task(join, std::vector<std::string>{"a", "b"}, std::string("+"));
    for (std::size_t n = 0; n < call.bytes.size(); ++n) {
        mp::Encoder out;
        std::span<const std::byte> cut(call.bytes.data(), n);
        EXPECT_THROW(run_shipped_task(cut, {}, out), mp::DecodeError) << "length " << n;
        EXPECT_TRUE(out.bytes().empty());
    }
}

TEST(CallableCorrupt, TrailingBytesBadMagicBadFlagsBadOffset) {
    const ShippedCall call = package_task(square, 3);
    auto bytes = call.bytes;
    bytes.push_back(std::byte{0});
    EXPECT_THROW(run_shipped_call(bytes, {}), mp::DecodeError);

    bytes = call.bytes;
    bytes[0] ^= std::byte{0xff};
    EXPECT_THROW(run_shipped_call(bytes, {}), mp::DecodeError);

    bytes = call.bytes;
    bytes[4] = std::byte{0x80};  // the thunk identity's flags
    EXPECT_THROW(run_shipped_call(bytes, {}), mp::DecodeError);

    // The thunk identity: magic(4) flags kind n id(n) path-length(8) path(0: main) offset(8).
    const auto n = static_cast<std::size_t>(call.bytes[6]);
    const std::size_t offset_at = 4 + 3 + n + 8;
    bytes = call.bytes;
    const std::uint64_t far = 0x7fffffffffffULL;
    std::memcpy(bytes.data() + offset_at, &far, sizeof far);
    try {
        run_shipped_call(bytes, {});
        ADD_FAILURE() << "no exception";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("outside the code of module"), std::string::npos)
            << e.what();
    }
    // Not a task result either.
    EXPECT_THROW(decode_task_result<int>(std::vector<std::byte>{std::byte{7}}), mp::DecodeError);
}

TEST(CallableCorrupt, BuildIdMismatchIsAClearProcessError) {
    const auto main_id = mp::detail::module_of(mp::detail::code_address(&square))->id_bytes;
    ShippedCall call = package_task(square, 3);
    const std::size_t at = find_bytes(call.bytes, main_id);
    ASSERT_NE(at, std::string::npos);
    call.bytes[at] ^= std::byte{0x5a};
    try {
        run_shipped_call(call.bytes, {});
        ADD_FAILURE() << "no exception";
    } catch (const mp::DecodeError& e) {
        ADD_FAILURE() << "a mismatch is not corruption: " << e.what();
    } catch (const mp::ProcessError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("binary mismatch: module "), std::string::npos) << what;
        EXPECT_NE(what.find("(the main executable) has build id "), std::string::npos) << what;
        EXPECT_NE(what.find(" in the sender"), std::string::npos) << what;
    }

    // A shared library: found by path, with another build id.
    const auto lib_id = mp::detail::module_of(callable_lib::some_code_address())->id_bytes;
    call = package_task(callable_lib::triple, 3);
    const std::size_t lib_at = find_bytes(call.bytes, lib_id);
    ASSERT_NE(lib_at, std::string::npos);
    call.bytes[lib_at] ^= std::byte{0x5a};
    try {
        run_shipped_call(call.bytes, {});
        ADD_FAILURE() << "no exception";
    } catch (const mp::ProcessError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("binary mismatch: module "), std::string::npos) << what;
        EXPECT_NE(what.find("libmp_callable_testlib"), std::string::npos) << what;
    }
}

// ---- entry points: only the start of a thunk, or of a function ---------------------------

TEST(CallableEntryPoints, ThunkOffsetMovedByOneByteIsRefused) {
    const auto bytes = shift_offset(package_task(square, 3).bytes, thunk_at, 1);
    const std::string what = outcome_of(bytes);
    EXPECT_EQ(what.rfind("ProcessError: multiproc: refused a shipped call: ", 0), 0u) << what;
    EXPECT_NE(what.find(hex_offset(bytes, thunk_at)), std::string::npos) << what;
    EXPECT_NE(what.find("(the main executable) is not the start of a multiproc thunk"),
              std::string::npos)
        << what;
}

TEST(CallableEntryPoints, TargetOffsetMovedByOneByteIsRefused) {
    for (std::int64_t delta : {1, -1, 4}) {
        const auto bytes = shift_offset(package_task(square, 3).bytes,
                                        target_at(package_task(square, 3).bytes), delta);
        const std::string what = outcome_of(bytes);
        EXPECT_NE(what.find(hex_offset(bytes, target_at(bytes))), std::string::npos) << what;
        EXPECT_NE(what.find("is not the start of a function this build can ship"),
                  std::string::npos)
            << what;
    }
    // In a shared library too.
    auto lib = package_task(callable_lib::triple, 3).bytes;
    lib = shift_offset(lib, target_at(lib), 1);
    const std::string what = outcome_of(lib);
    EXPECT_NE(what.find("libmp_callable_testlib"), std::string::npos) << what;
    EXPECT_NE(what.find("is not the start of a function"), std::string::npos) << what;
}

TEST(CallableEntryPoints, ThunkIdentityNamingAnotherFunctionIsRefused) {
    // The thunk position names square (a function, but not a thunk): calling it as
    // void(Decoder&, Encoder*) would be undefined.
    const auto call = package_task(square, 3).bytes;
    const std::size_t t = target_at(call);
    std::vector<std::byte> bytes(call.begin(), call.begin() + thunk_at);
    bytes.insert(bytes.end(), call.begin() + static_cast<std::ptrdiff_t>(t),
                 call.begin() + static_cast<std::ptrdiff_t>(t + identity_size(call, t)));
    bytes.insert(bytes.end(), call.begin() + static_cast<std::ptrdiff_t>(thunk_at), call.end());
    const std::string what = outcome_of(bytes);
    EXPECT_NE(what.find("is not the start of a multiproc thunk"), std::string::npos) << what;
}

TEST(CallableEntryPoints, EveryThunkKindAndTargetKindIsAccepted) {
    auto twice = [](int x) { return 2 * x; };
    EXPECT_EQ(run_here<int>(package_task(twice, 4)), 8);
    EXPECT_EQ(run_here<int>(package_task(+twice, 5)), 10);  // a lambda's static invoker
    EXPECT_EQ(run_here<int>(package_task(callable_lib::triple, 2)), 6);
    EXPECT_EQ(run_here<int>(callable_lib::package_scaled_sum({1, 2}, 2)), 6);
    EXPECT_EQ(run_here<int>(package_task(callable_nobid_negate, 2)), -2);
}

void barrier_action() {}

TEST(CallableEntryPoints, BarrierActionMovedByOneByteIsRefused) {
    mp::Barrier b(1, barrier_action);
    mp::Encoder e;
    e(b);
    EXPECT_NO_THROW({
        std::vector<UniqueFd> fds;
        for (int fd : e.fds()) fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        mp::Decoder d(e.bytes(), fds);
        mp::Barrier copy;
        d(copy);
    });
    // The action's identity ends the encoding: its offset is the last 8 bytes.
    std::vector<std::byte> bytes = e.bytes();
    std::uint64_t off = 0;
    std::memcpy(&off, bytes.data() + bytes.size() - 8, 8);
    ++off;
    std::memcpy(bytes.data() + bytes.size() - 8, &off, 8);
    std::vector<UniqueFd> fds;
    for (int fd : e.fds()) fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    mp::Decoder d(bytes, fds);
    mp::Barrier copy;
    try {
        d(copy);
        ADD_FAILURE() << "a Barrier's action decoded to the middle of a function";
    } catch (const mp::ProcessError& err) {
        EXPECT_NE(std::string(err.what()).find("is not the start of a function"), std::string::npos)
            << err.what();
    }
}

TEST(CallableEntryPoints, StrippedModuleShipsOnlyItsExportedFunctions) {
    void* h = ::dlopen(MP_CALLABLE_STRIPPED_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << ::dlerror();
    auto exported = reinterpret_cast<int (*)(int)>(::dlsym(h, "callable_stripped_exported"));
    auto hidden_of = reinterpret_cast<int (*(*)())(int)>(::dlsym(h, "callable_stripped_hidden"));
    ASSERT_TRUE(exported && hidden_of);
    EXPECT_EQ(run_here<int>(package_task(exported, 1)), 2);
    const std::string what = outcome_of(package_task(hidden_of(), 1).bytes);
    EXPECT_NE(what.find("libmp_callable_stripped"), std::string::npos) << what;
    EXPECT_NE(what.find("is not the start of a function this build can ship (the module has no "
                        "symbol table: it was stripped"),
              std::string::npos)
        << what;
    ::dlclose(h);
}

// ---- a module is loaded only when its file has the sender's build id -----------------------

class TraceFile {
public:
    TraceFile() : path_("/tmp/mp_callable_trace_" + std::to_string(::getpid())) {
        ::unlink(path_.c_str());
        ::setenv("MP_CALLABLE_TRACE_FILE", path_.c_str(), 1);
    }
    ~TraceFile() {
        ::unsetenv("MP_CALLABLE_TRACE_FILE");
        ::unlink(path_.c_str());
    }
    bool exists() const {
        struct stat st {};
        return ::stat(path_.c_str(), &st) == 0;
    }

private:
    std::string path_;
};

TEST(CallableLoad, LibraryWithAnotherBuildIdIsNotLoaded) {
    ASSERT_FALSE(trace_library_loaded());
    TraceFile trace;
    const std::string what = outcome_of(call_into_trace_library());
    EXPECT_EQ(what.rfind("ProcessError: multiproc: binary mismatch: module ", 0), 0u) << what;
    EXPECT_NE(what.find("libmp_callable_trace"), std::string::npos) << what;
    EXPECT_NE(what.find("(not loaded)"), std::string::npos) << what;
    EXPECT_FALSE(trace.exists()) << "the library's constructor ran";
    EXPECT_FALSE(trace_library_loaded());
}

TEST(CallableLoad, PathsThatAreNotModulesAreRefusedWithoutLoading) {
    const auto id = std::vector<std::byte>(20, std::byte{1});
    const auto call = package_task(square, 3).bytes;
    // Relative: dlopen would search its library path for another file than the one checked.
    std::string what =
        outcome_of(with_target(call, library_identity("libmp_callable_trace.so", id, 0x1000)));
    EXPECT_NE(what.find("DecodeError: multiproc: corrupt call: a module path that is not absolute"),
              std::string::npos)
        << what;
    // Not an ELF file, a directory, a missing file, a FIFO (opening it must not block).
    char dir[] = "/tmp/mp_callable_dirXXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string text = std::string(dir) + "/text", fifo = std::string(dir) + "/fifo";
    { std::ofstream(text) << "not an ELF file\n"; }
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    for (const std::string& path : {text, std::string(dir), std::string(dir) + "/missing", fifo}) {
        what = outcome_of(with_target(call, library_identity(path, id, 0x1000)));
        EXPECT_EQ(what.rfind("ProcessError: multiproc: cannot read module " + path, 0), 0u) << what;
    }
    ::unlink(text.c_str());
    ::unlink(fifo.c_str());
    ::rmdir(dir);
}

// ---- in children of every start method: the check runs in the child ------------------------

// Runs forged bytes as a task in this (child) process and sends back what happened.
void run_forged(std::vector<std::byte> bytes, mp::Connection report) {
    report.send(outcome_of(bytes));
}

class CallableForged : public mp::test::StartMethodTest {
protected:
    std::string outcome_in_child(const std::vector<std::byte>& bytes) {
        auto [r, w] = mp::Pipe(false);
        mp::Process p = start(run_forged, bytes, w);
        w.close();
        std::string what;
        try {
            what = r.recv<std::string>();
        } catch (const mp::EOFError&) {
            what = "the child died before reporting";
        }
        join_ok(p);
        return what;
    }
};

TEST_P(CallableForged, EntryPointsAreCheckedInTheChild) {
    const auto call = package_task(square, 3).bytes;
    std::string what = outcome_in_child(shift_offset(call, thunk_at, 1));
    EXPECT_NE(what.find("is not the start of a multiproc thunk"), std::string::npos) << what;
    what = outcome_in_child(shift_offset(call, target_at(call), 1));
    EXPECT_NE(what.find("is not the start of a function"), std::string::npos) << what;
    EXPECT_EQ(outcome_in_child(call), "ran");
}

TEST_P(CallableForged, LibraryWithAnotherBuildIdIsNotLoadedInTheChild) {
    TraceFile trace;
    const std::string what = outcome_in_child(call_into_trace_library());
    EXPECT_NE(what.find("binary mismatch: module "), std::string::npos) << what;
    EXPECT_NE(what.find("(not loaded)"), std::string::npos) << what;
    EXPECT_FALSE(trace.exists()) << "the library's constructor ran in the child";
}

INSTANTIATE_TEST_SUITE_P(StartMethods, CallableForged,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

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
    void* h = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << ::dlerror();
    auto cube = reinterpret_cast<int (*)(int)>(::dlsym(h, "callable_plugin_cube"));
    auto pack =
        reinterpret_cast<void (*)(int, long, ShippedCall*)>(::dlsym(h, "callable_plugin_package"));
    ASSERT_TRUE(cube && pack);
    ShippedCall from_plugin;
    pack(7, 1000, &from_plugin);
    const ShippedCall by_pointer = package_task(cube, 4);

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
        auto info = mp::detail::module_of(mp::detail::code_address(cube));
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
    ::dlclose(h);
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
