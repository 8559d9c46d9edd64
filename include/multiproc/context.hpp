// Start methods and contexts (Python's multiprocessing.context).
//
// A start method is how a child process is made: `fork` (the child is a copy of the parent;
// any callable and any copyable arguments work), `spawn` (a fresh exec of the program that
// enters through mp::init) and `forkserver` (a clean single-threaded server forks children).
//
// The default method is `fork`: it runs any callable with any copyable arguments, needs no
// mp::init, and is the fastest. Forking a process that already runs several threads logs a
// warning once (as Python 3.12 does), since a lock held by another thread at fork time stays
// held forever in the child.
//
// A Context is a small value that fixes a method for the objects it makes
// (`mp::get_context("fork").Process(f, args...)`). A Process made without a context asks for
// the global default at start(), as Python does. The global default is set at most once with
// set_start_method (a second call without force is an mp::UsageError, Python's RuntimeError);
// asking for it with get_start_method() or starting a Process with it also fixes it.
//
// set_forkserver_preload gives the forkserver a call to run once before it serves, so that its
// children inherit what the call built (docs/start_methods.md, "A warm forkserver").
//
// Thread safety: every function here may be called from any thread. Nothing here blocks.
#pragma once

// Context and the functions: detail/context.hpp; Context::Process: process.hpp, which includes
// the former (one direction only).
#include "multiproc/detail/context.hpp"
#include "multiproc/process.hpp"

#include <optional>
#include <utility>

#include "multiproc/callable.hpp"
#include "multiproc/errors.hpp"

namespace mp {

namespace detail {
/// Sets the forkserver's preload to `call` (its descriptors duplicated), or clears it.
void set_forkserver_preload_call(std::optional<ShippedCall> call);
}  // namespace detail

/// Python's set_forkserver_preload, with a function in place of module names: a forkserver
/// started from now on runs f(args...) once, before it serves, and every child it forks
/// inherits what f built (global tables, a loaded model) copy-on-write instead of building it
/// again. f and args must ship (docs/callable.md); f runs in the server, a fresh process of
/// this program, so it may not rely on this process's memory. An exception from f is an
/// mp::ProcessError carrying its type and what() from the start() that started the server.
/// A second call replaces the first. Children started by fork or spawn never run it (as in
/// Python). Descriptors f opens are not inherited (a child gets only its call's).
template <class F, class... Args>
void set_forkserver_preload(const F& f, const Args&... args) {
    static_assert(ShippableCall<F, Args...>,
                  "mp::set_forkserver_preload: the function and its arguments must ship to the "
                  "forkserver, a fresh process (see docs/callable.md)");
    detail::CallPackage package = detail::package_call(f, args...);
    if (!package.call) throw UsageError("multiproc: set_forkserver_preload: " + package.why_not);
    detail::set_forkserver_preload_call(std::move(package.call));
}
/// Clears the forkserver preload (Python's set_forkserver_preload([])); a running server keeps
/// what its preload built.
inline void set_forkserver_preload() { detail::set_forkserver_preload_call(std::nullopt); }

template <class F, class... Args>
void Context::set_forkserver_preload(const F& f, const Args&... args) const {
    mp::set_forkserver_preload(f, args...);
}

}  // namespace mp
