#include "demangle.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <memory>

#include "sys/io.hpp"

namespace mp::detail {

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> s(abi::__cxa_demangle(mangled, nullptr, nullptr,
                                                                 &status),
                                             std::free);
    return status == 0 && s ? std::string(s.get()) : std::string(mangled);
}

std::string current_exception_type_name() {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return t ? demangle(t->name()) : std::string("unknown");
}

HandledException describe_current_exception() {
    HandledException out;
    out.type = current_exception_type_name();
    try {
        throw;
    } catch (const std::exception& e) {
        out.what = e.what();
        out.has_what = true;
    } catch (...) {
    }
    return out;
}

void report_current_exception(const std::string& prefix) noexcept {
    try {
        const HandledException ex = describe_current_exception();
        const std::string msg =
            prefix + (ex.has_what ? ex.what : std::string("(unknown type)")) + "\n";
        sys::write_all(2, msg.data(), msg.size());
    } catch (...) {
        // Out of memory, or stderr is gone: nothing useful is left to say.
    }
}

}  // namespace mp::detail
