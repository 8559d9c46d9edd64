// The CPUs this process may run on: those online, and those its affinity mask allows.
#pragma once

namespace mp::sys {

/// The CPUs online (sysconf(_SC_NPROCESSORS_ONLN)); at least 1.
[[nodiscard]] int online_cpu_count() noexcept;
/// The CPUs the calling thread's affinity mask allows (sched_getaffinity, however large the
/// machine's mask); at least 1. std::system_error when the kernel refuses.
[[nodiscard]] int allowed_cpu_count();

}  // namespace mp::sys
