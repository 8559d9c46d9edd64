// Forged and corrupt shipped calls: every truncation and bad header is a DecodeError, a build id
// mismatch a clear ProcessError; only the start of a thunk or of a function this build can ship
// is an entry point; a module is loaded only when its file has the sender's build id; and the
// same checks run in children of every start method. Packages that ship: callable_test.cpp.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "callable_lib.hpp"
#include "helpers/callable_targets.hpp"
#include "helpers/start_method_test.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/synchronize.hpp"

namespace {

using namespace mp::test;  // the shared targets and the protocol names

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

}  // namespace
