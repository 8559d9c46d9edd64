// The non-template half of parallel_map / parallel_for: job counts, the engine of a Parallel.
#include "multiproc/parallel.hpp"

#include <algorithm>
#include <string>

#include "multiproc/process.hpp"

namespace mp {
namespace detail {

int resolve_jobs(int jobs) {
    if (jobs == 0)
        throw UsageError("mp::parallel_map: jobs == 0 has no meaning (use -1 for every CPU)");
    if (jobs > 0) return jobs;
    // joblib: -1 is every CPU, -2 all but one, ... and never fewer than one.
    return std::max(1, process_cpu_count() + 1 + jobs);
}

bool in_pool_worker() noexcept { return worker_progress_slot() != nullptr; }

ParallelOptions options_for(ParallelOptions options, std::size_t n) {
    const int jobs = resolve_jobs(options.jobs);
    if (n == 0) options.jobs = 1;  // nothing to do: no workers
    else if (jobs > 1 && static_cast<std::size_t>(jobs) > n)
        options.jobs = static_cast<int>(std::max<std::size_t>(n, 2));
    return options;
}

std::shared_ptr<Engine> make_parallel_engine(int processes, const std::optional<Context>& context) {
    EngineOptions eo;
    eo.processes = processes;
    eo.context = context;
    eo.owner = "mp::parallel_map";
    return std::make_shared<Engine>(std::move(eo));
}

}  // namespace detail

// --- Parallel ----------------------------------------------------------------------------------

Parallel::Parallel(ParallelOptions options) : opts_(std::move(options)) {
    jobs_ = detail::resolve_jobs(opts_.jobs);
    in_place_ = jobs_ == 1;
}

Parallel::~Parallel() {
    std::shared_ptr<detail::Engine> e;
    {
        std::lock_guard lk(m_);
        e = std::move(engine_);
    }
    if (!e) return;
    // Every call has returned, so the workers are idle: let them exit cleanly.
    e->close();
    try {
        e->join();
    } catch (...) {
        e->terminate();
    }
}

std::shared_ptr<detail::Engine> Parallel::acquire() {
    std::lock_guard lk(m_);
    if (engine_ && engine_->broken()) engine_.reset();
    if (!engine_) engine_ = detail::make_parallel_engine(jobs_, opts_.context);
    return engine_;
}

void Parallel::discard() noexcept {
    std::shared_ptr<detail::Engine> e;
    {
        std::lock_guard lk(m_);
        e = std::move(engine_);
    }
    if (e) e->terminate();
}

}  // namespace mp
