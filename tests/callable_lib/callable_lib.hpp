// A shared library linked to callable's tests: targets that live in a module other than the
// executable, and a task packaged inside the library (so its thunk lives here too).
#pragma once

#include <string>
#include <vector>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

namespace callable_lib {

/// 3 * x.
int triple(int x);
/// "hello, " + name.
std::string greet(std::string name);
/// Throws std::out_of_range naming x.
int throw_out_of_range(int x);
/// A task packaged here: sum(v) * k computed by a lambda capturing k (thunk and closure from
/// this library).
mp::detail::ShippedCall package_scaled_sum(const std::vector<int>& v, int k);
/// The address of a function of this library, for module_of.
std::uintptr_t some_code_address();

}  // namespace callable_lib

/// In a second library linked with --build-id=none: identified by path, size and mtime.
int callable_nobid_negate(int x);
