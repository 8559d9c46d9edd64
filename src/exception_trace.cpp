// Records the stack at the throw point by interposing __cxa_throw: the Itanium C++ ABI routes
// every `throw` through it, and a definition in the program (this archive is searched before
// libstdc++) takes precedence; the real one is found with dlsym(RTLD_NEXT) (sys/symbols.hpp). The cost when
// recording is off is one relaxed atomic load per throw.
#include "exception_trace.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <typeinfo>

#include "demangle.hpp"
#include "sys/symbols.hpp"

namespace mp::detail {
namespace {

std::atomic<bool> g_record{false};

struct ThrowTrace {
    void* frames[48];
    int count = 0;
};
thread_local ThrowTrace t_last;

using cxa_throw_fn = void (*)(void*, std::type_info*, void (*)(void*));

cxa_throw_fn real_cxa_throw() {
    static cxa_throw_fn real = reinterpret_cast<cxa_throw_fn>(sys::next_definition("__cxa_throw"));
    return real;
}

}  // namespace

void record_throw_traces(bool on) noexcept { g_record.store(on, std::memory_order_relaxed); }

std::string last_throw_trace() {
    std::string out;
    // Frame 0 is __cxa_throw itself.
    for (int i = 1; i < t_last.count; ++i) {
        void* pc = t_last.frames[i];
        char line[512];
        // A return address can point just past the end of a function whose last instruction is
        // a call (a noreturn throw): look up the byte before it.
        const sys::CodeLocation at = sys::locate_code(static_cast<char*>(pc) - 1);
        if (at.file) {
            const auto off = static_cast<const char*>(pc) - static_cast<const char*>(at.file_base);
            std::string sym = at.symbol ? demangle(at.symbol) : std::string("??");
            std::snprintf(line, sizeof line, "  #%d %s (%s+0x%lx)\n", i - 1, sym.c_str(), at.file,
                          static_cast<unsigned long>(off));
        } else {
            std::snprintf(line, sizeof line, "  #%d %p\n", i - 1, pc);
        }
        out += line;
        if (at.symbol && std::string_view(at.symbol) == "main") break;
    }
    return out;
}

}  // namespace mp::detail

extern "C" [[noreturn]] void __cxa_throw(void* obj, std::type_info* type, void (*dtor)(void*)) {
    using namespace mp::detail;
    const int max_frames = static_cast<int>(std::size(t_last.frames));
    t_last.count = g_record.load(std::memory_order_relaxed)
                       ? mp::sys::capture_stack(t_last.frames, max_frames)
                       : 0;
    cxa_throw_fn real = real_cxa_throw();
    if (!real) std::abort();
    real(obj, type, dtor);
    __builtin_unreachable();
}
