// multiproc: Python's multiprocessing, natively in C++20. The umbrella header: everything below,
// as `import multiprocessing as mp` gives everything in Python.
//
//   bootstrap      mp::init (the `if __name__ == "__main__"` guard)
//   context        start methods, contexts
//   process        Process, current_process, active_children, cpu_count
//   connection     Pipe, Connection, wait
//   sharedctypes   Value, Array (RawValue, RawArray)
//   synchronize    Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier
//   shared_memory  SharedMemory
//   queues         Queue, SimpleQueue, JoinableQueue
//   pool           Pool, AsyncResult
//   futures        ProcessPoolExecutor, Future, as_completed, wait
//   parallel       parallel_map, parallel_for, Parallel
//   signals        SigintGuard: Ctrl-C as mp::KeyboardInterrupt (other signals never fail a call)
//   callable       what can be shipped to another process
//   reduction      the codec: values <-> bytes
//   trace          timeline (MP_TRACE, Perfetto) and performance_report (MP_REPORT, HTML)
#pragma once

#include "multiproc/bootstrap.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/connection.hpp"
#include "multiproc/context.hpp"
#include "multiproc/engine_stats.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/file_descriptor.hpp"
#include "multiproc/futures.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/logging.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/parallel.hpp"
#include "multiproc/pool.hpp"
#include "multiproc/process.hpp"
#include "multiproc/progress.hpp"
#include "multiproc/queues.hpp"
#include "multiproc/reduction.hpp"
#include "multiproc/shared_memory.hpp"
#include "multiproc/sharedctypes.hpp"
#include "multiproc/signals.hpp"
#include "multiproc/synchronize.hpp"
#include "multiproc/timeout.hpp"
#include "multiproc/trace.hpp"
