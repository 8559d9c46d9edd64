// Stack traces of thrown exceptions, for the exception transport: while enabled, every throw
// in this process records the thrower's stack (the last throw of each thread is kept), so an
// exception that leaves a child's target or task carries the stack of its throw point.
#pragma once

#include <string>

namespace mp::detail {

/// Starts or stops recording a stack at every throw in this process (off by default; children
/// of multiproc turn it on before they run user code).
void record_throw_traces(bool on) noexcept;
/// The recorded stack of the last exception thrown by this thread, one frame a line, or "".
std::string last_throw_trace();

}  // namespace mp::detail
