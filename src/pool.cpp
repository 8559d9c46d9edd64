// mp::Pool's non-template half: construction, shutdown.
#include "multiproc/pool.hpp"

#include <algorithm>
#include <string>

#include "multiproc/process.hpp"

namespace mp {

Pool::Pool(std::optional<int> processes, PoolOptions options) {
    if (processes && *processes < 1)
        throw UsageError("mp::Pool: the number of processes must be at least 1");
    // On the "mpi" context the default is every slot of every worker rank (0), not this host's.
    const bool cluster = options.context && options.context->method() == StartMethod::mpi;
    auto eo =
        detail::front_end_engine_options("mp::Pool", processes.value_or(cluster ? 0 : cpu_count()),
                                         options.initializer, options.maxtasksperchild,
                                         options.context, options.retries);
    detail::set_worker_limits(eo, options.task_timeout, options.retry_timeouts,
                              options.max_memory_per_child);
    engine_ = detail::make_owned<detail::Engine>(std::move(eo));
}

Pool::~Pool() { terminate(); }

void Pool::check_running(const char* what) const {
    if (state_.load(std::memory_order_acquire) != 0)
        throw UsageError(std::string("mp::Pool::") + what +
                         ": Pool not running (closed or terminated)");
}

void Pool::close() {
    int expected = 0;
    state_.compare_exchange_strong(expected, 1);
    engine_->close();
}

void Pool::terminate() noexcept {
    state_.store(2, std::memory_order_release);
    engine_->terminate();
}

void Pool::join() {
    if (state_.load(std::memory_order_acquire) == 0)
        throw UsageError("mp::Pool::join: call close() or terminate() first");
    engine_->join();
}

int Pool::processes() const noexcept { return engine_->processes(); }

std::vector<pid_t> Pool::worker_pids() const { return engine_->worker_pids(); }

PoolStats Pool::stats() const { return engine_->stats(); }

}  // namespace mp
