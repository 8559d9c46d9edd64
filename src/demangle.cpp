#include "demangle.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace mp::detail {

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> s(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                             std::free);
    return status == 0 && s ? std::string(s.get()) : std::string(mangled);
}

std::string current_exception_type_name() {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return t ? demangle(t->name()) : std::string("unknown");
}

}  // namespace mp::detail
