// What the tests of shipping calls by identity (tests/callable_test.cpp, callable_exec_test.cpp,
// callable_forged_test.cpp) share: targets that travel under every form (a function, a function
// object as its bytes or through the codec, a descriptor beside the bytes), running a package
// here, and finding bytes in a package. The targets are inline: one definition in each binary,
// which is all an identity needs.
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "sys/io.hpp"

namespace mp::test {

// The names of the call protocol the tests spell unqualified (`using namespace mp::test`).
using mp::detail::decode_task_result;
using mp::detail::package_call;
using mp::detail::package_task;
using mp::detail::run_shipped_call;
using mp::detail::run_shipped_task;
using mp::detail::ShippedCall;
using mp::detail::UniqueFd;

/// Returns x squared.
inline int square(int x) { return x * x; }

#ifdef MP_CALLABLE_PLUGIN_PATH
/// The test plugin (tests/callable_lib), opened here: its cube(int) target and its function that
/// packages a call whose thunk and closure are in the plugin. `handle` is null (and dlerror() says
/// why) when it did not open; the caller dlcloses it.
struct Plugin {
    void* handle = nullptr;
    int (*cube)(int) = nullptr;
    void (*package)(int, long, ShippedCall*) = nullptr;
};
inline Plugin open_plugin() {
    Plugin p;
    p.handle = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!p.handle) return p;
    p.cube = reinterpret_cast<int (*)(int)>(::dlsym(p.handle, "callable_plugin_cube"));
    p.package =
        reinterpret_cast<void (*)(int, long, ShippedCall*)>(::dlsym(p.handle,
                                                                    "callable_plugin_package"));
    return p;
}
#endif

/// The parts joined by sep.
inline std::string join(std::vector<std::string> parts, std::string sep) {
    std::string out;
    for (auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

/// Always throws std::invalid_argument("bad value <x>").
inline int always_invalid(int x) { throw std::invalid_argument("bad value " + std::to_string(x)); }

// A function object that travels as its bytes.
struct Affine {
    int a, b;
    /// a * x + b.
    int operator()(int x) const { return a * x + b; }
};

// A function object that travels through the codec.
struct Prefixer {
    std::string prefix;
    /// Encodes and decodes the prefix.
    template <class Ar>
    void serialize(Ar& ar) {
        ar(prefix);
    }
    /// The prefix, then s.
    std::string operator()(std::string s) const { return prefix + s; }
};

// A handle: a descriptor that travels beside the bytes.
struct PipeEnd {
    mp::detail::UniqueFd fd;
    /// Ships the descriptor beside the bytes.
    void save(mp::Encoder& e) const { e.add_fd(fd.get()); }
    /// Takes the received descriptor.
    void load(mp::Decoder& d) { fd = d.take_fd(); }
};

/// Writes text to the pipe end; returns how many bytes.
inline int write_to(PipeEnd end, std::string text) {
    mp::sys::write_all(end.fd.get(), text.data(), text.size());
    return static_cast<int>(text.size());
}

/// Whether the plugin library (MP_CALLABLE_PLUGIN_PATH) is loaded in this process.
inline bool plugin_loaded() {
    void* h = ::dlopen(MP_CALLABLE_PLUGIN_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (h) ::dlclose(h);
    return h != nullptr;
}

/// Runs a package as a task in this process; returns its result.
template <class R>
R run_here(const mp::detail::ShippedCall& call) {
    mp::Encoder out;
    mp::detail::run_shipped_task(call.bytes, {}, out);
    return mp::detail::decode_task_result<R>(out.bytes());
}

/// Where needle starts in hay at or after from, or std::string::npos.
inline std::size_t find_bytes(const std::vector<std::byte>& hay,
                              const std::vector<std::byte>& needle, std::size_t from = 0) {
    auto it = std::search(hay.begin() + static_cast<std::ptrdiff_t>(from), hay.end(),
                          needle.begin(), needle.end());
    return it == hay.end() ? std::string::npos : static_cast<std::size_t>(it - hay.begin());
}

}  // namespace mp::test
