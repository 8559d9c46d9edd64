// Signals and Ctrl-C (docs/signals.md). Python's rules (PEP 475): every blocking call of
// multiproc (Pool.map, AsyncResult::get, Future::result, as_completed, mp::wait, Process::join,
// Lock/Semaphore acquire, Condition/Event/Barrier waits, Queue get/put/join, Connection
// recv/poll, parallel_map, ...) goes on waiting after a signal handler returns, against its
// original deadline: a SIGALRM timer, SIGCHLD, SIGWINCH, SIGPROF or SIGUSR1 handler never
// makes one fail or wait longer than asked.
//
// Ctrl-C is the one signal that interrupts, and only once the program asks for it:
//
//   int main(int argc, char** argv) {
//       mp::init(argc, argv);
//       mp::SigintGuard ctrl_c;          // from here on, SIGINT throws mp::KeyboardInterrupt
//       mp::Pool pool(4);
//       try {
//           auto r = pool.map(slow, items);
//       } catch (const mp::KeyboardInterrupt&) {
//           std::puts("interrupted");    // the pool still works; ~Pool terminates it
//       }
//   }
//
// While a guard lives in a thread, a SIGINT makes the blocking call that thread is in (or the
// next one it makes) throw mp::KeyboardInterrupt within a few tens of milliseconds; one SIGINT
// is one exception. The call leaves nothing half done: a Queue item is either taken or left
// in the queue, a lock is not acquired, a Condition wait holds its lock again, a Barrier is
// broken (as Python's), a Connection message is received whole or not at all, and a map's
// items not sent yet are cancelled while its running tasks finish. Without a guard SIGINT
// keeps the program's own disposition (by default it kills the program, and pool workers and
// daemonic children die with it). Pool workers ignore SIGINT either way: a Ctrl-C at the
// terminal reaches the whole process group, and the parent decides what happens to its tasks.
// Children (every start method) start without the parent's guard, with SIGINT's default
// disposition: a child that wants KeyboardInterrupt makes its own guard.
//
// Thread safety: guards may live in several threads at once; each interrupts only the calls
// of the thread it lives in (Python raises KeyboardInterrupt in one thread too), and is
// destroyed by that thread.
#pragma once

namespace mp {

/// While alive, SIGINT makes this thread's blocking multiproc calls throw mp::KeyboardInterrupt.
/// The first guard of the process installs the handler; the last restores the previous
/// disposition (a SIGINT no call consumed by then is dropped). Nests; not copyable.
class SigintGuard {
public:
    /// Installs the SIGINT handler if no guard did (std::system_error if sigaction fails).
    SigintGuard();
    SigintGuard(const SigintGuard&) = delete;
    SigintGuard& operator=(const SigintGuard&) = delete;
    /// Ends this thread's interruptible calls; the process's last guard restores SIGINT.
    ~SigintGuard();
};

/// Throws mp::KeyboardInterrupt if a SIGINT arrived (consuming it) and this thread holds a
/// guard: for loops of the program's own that make no blocking multiproc call.
void throw_if_interrupted();

}  // namespace mp
