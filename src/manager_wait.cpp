// A manager connection thread's adaptive wait: a short poll loop while the client calls back to
// back, a plain blocking wait otherwise.
#include "manager_wait.hpp"

#include "multiproc/connection.hpp"
#include "sys/cpu_relax.hpp"
#include "sys/cpus.hpp"

namespace mp::detail {

namespace {

// Spinning on one CPU only delays the client the thread waits for.
bool may_spin() {
    static const bool several = [] {
        try {
            return sys::allowed_cpu_count() > 1;
        } catch (...) {
            return false;
        }
    }();
    return several;
}

}  // namespace

void RequestWait::before_recv(Connection& c) noexcept {
    if (!burst_ || !may_spin()) return;
    const auto until = clock::now() + spin_for;
    try {
        while (!c.poll() && clock::now() < until) sys::cpu_relax();
    } catch (...) {
        // A closed connection or an interrupted poll: the recv that follows reports it.
    }
}

}  // namespace mp::detail
