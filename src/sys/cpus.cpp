#include "sys/cpus.hpp"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "multiproc/errors.hpp"

namespace mp::sys {

int online_cpu_count() noexcept {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

int allowed_cpu_count() {
    // The mask may be larger than cpu_set_t's 1024 bits on big machines: grow until it fits.
    for (int ncpus = 1024;; ncpus *= 2) {
        cpu_set_t* set = CPU_ALLOC(ncpus);
        if (!set) throw std::bad_alloc();
        std::size_t size = CPU_ALLOC_SIZE(ncpus);
        CPU_ZERO_S(size, set);
        int r = ::sched_getaffinity(0, size, set);
        int count = r == 0 ? CPU_COUNT_S(size, set) : 0;
        int err = errno;
        CPU_FREE(set);
        if (r == 0) return count > 0 ? count : 1;
        if (err != EINVAL || ncpus >= (1 << 22)) throw_os_error("sched_getaffinity", err);
    }
}

}  // namespace mp::sys
