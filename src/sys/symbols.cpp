#include "sys/symbols.hpp"

#include <dlfcn.h>

namespace mp::sys {

CodeLocation locate_code(const void* addr) noexcept {
    Dl_info info{};
    if (!::dladdr(addr, &info)) return {};
    return {info.dli_fname, info.dli_fbase, info.dli_sname};
}

const char* symbol_at(const void* addr) noexcept {
    Dl_info info{};
    if (!::dladdr(addr, &info) || info.dli_saddr != addr) return nullptr;
    return info.dli_sname;
}

void* next_definition(const char* name) noexcept { return ::dlsym(RTLD_NEXT, name); }

}  // namespace mp::sys
