// Readable C++ type and symbol names.
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

}  // namespace mp::detail
