// Readable C++ type and symbol names, and the one description of "the exception being handled"
// that every report on stderr uses (a failing Pool callback, a done callback, a Process target).
#pragma once

#include <string>
#include <typeinfo>

namespace mp::detail {

/// The demangled form of a mangled name (the name itself when it does not demangle).
std::string demangle(const char* mangled);
/// The demangled name of a type.
inline std::string type_name(const std::type_info& t) { return demangle(t.name()); }
/// The demangled type of the exception being handled, or "unknown".
std::string current_exception_type_name();

/// The exception being handled, as a report names it.
struct HandledException {
    std::string type;       ///< demangled type name
    std::string what;       ///< what() of a std::exception, else empty
    bool has_what = false;  ///< true for a std::exception
};
/// Describes the exception being handled; call it in a catch block.
HandledException describe_current_exception();
/// Writes `prefix`, the what() of the exception being handled (or "(unknown type)") and a
/// newline to stderr in one write; call it in a catch block. Python prints a failing
/// callback's traceback and carries on: so do the pools.
void report_current_exception(const std::string& prefix) noexcept;

}  // namespace mp::detail
