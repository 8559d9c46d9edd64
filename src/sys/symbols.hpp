// Code addresses as the C library and the dynamic loader see them: the return addresses on the
// calling thread's stack (backtrace), the file and symbol an address lies in (dladdr), and the
// definition that a symbol of the program interposes (dlsym RTLD_NEXT).
#pragma once

#include <execinfo.h>

namespace mp::sys {

/// Fills `frames` with up to `max` return addresses of the calling thread's stack, the caller's
/// own first; returns how many. Inlined, so that the first frame is the caller's, not ours.
[[gnu::always_inline]] inline int capture_stack(void** frames, int max) noexcept {
    return ::backtrace(frames, max);
}

/// Where a code address lies, as the dynamic loader knows it; null members when unknown.
struct CodeLocation {
    const char* file = nullptr;       ///< path of the module holding it
    const void* file_base = nullptr;  ///< the address the module is loaded at
    const char* symbol = nullptr;     ///< the nearest symbol at or before it (mangled)
};

/// dladdr(addr): the module and symbol `addr` lies in.
[[nodiscard]] CodeLocation locate_code(const void* addr) noexcept;

/// The (mangled) name of the dynamic symbol that starts exactly at `addr`, or nullptr: a
/// function of internal linkage has none.
[[nodiscard]] const char* symbol_at(const void* addr) noexcept;

/// dlsym(RTLD_NEXT, name): the definition of `name` in the modules loaded after this library,
/// the one a definition here interposes; nullptr when there is none.
[[nodiscard]] void* next_definition(const char* name) noexcept;

}  // namespace mp::sys
