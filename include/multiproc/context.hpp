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
// Thread safety: every function here may be called from any thread. Nothing here blocks.
#pragma once

// Context and the functions: detail/context.hpp; Context::Process: process.hpp, which includes
// the former (one direction only).
#include "multiproc/detail/context.hpp"
#include "multiproc/process.hpp"
