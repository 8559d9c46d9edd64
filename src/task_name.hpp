// A readable name for the target of a packaged task, for the errors that name a task (a task
// that overran its time limit). Built only when such an error is: packaging a task records
// nothing for it.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace mp::detail {

/// The target of a packaged call (detail/task.hpp): a function's demangled name
/// ("slow(int)"), else the type of the function object; "a task" when it cannot be told.
std::string describe_task_target(std::span<const std::byte> call) noexcept;

/// The first template argument of a demangled thunk name ("void mp::detail::thunk<int (*)(int),
/// ...>(...)" -> "int (*)(int)"): the target's type; empty when there is none.
std::string thunk_target_type(const std::string& thunk_symbol);

}  // namespace mp::detail
