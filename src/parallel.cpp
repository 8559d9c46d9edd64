// The non-template half of parallel_map / parallel_for: job counts, the engine of a Parallel.
#include "multiproc/parallel.hpp"

#include <algorithm>
#include <string>

#include "context_cluster.hpp"
#include "multiproc/process.hpp"

namespace mp {
namespace detail {

namespace {

// joblib's n_jobs against `all` workers: -1 is all of them, -2 all but one, ... never fewer
// than one.
int resolve_jobs_of(int jobs, int all) {
    if (jobs == 0)
        throw UsageError("mp::parallel_map: jobs == 0 has no meaning (use -1 for every CPU)");
    return jobs > 0 ? jobs : std::max(1, all + 1 + jobs);
}

bool on_cluster(const std::optional<Context>& context) {
    return context && context->method() == StartMethod::mpi;
}

// Every CPU this process may use; on the "mpi" context, every slot of the job's worker ranks.
int every_worker(const std::optional<Context>& context) {
    if (!on_cluster(context)) return process_cpu_count();
    const auto* hooks = cluster();
    if (!hooks) static_cast<void>(get_context("mpi"));  // throws the reason
    return hooks->workers();
}

int resolve_jobs_for(const ParallelOptions& o) {
    return resolve_jobs_of(o.jobs, o.jobs < 0 ? every_worker(o.context) : 0);
}

}  // namespace

int resolve_jobs(int jobs) { return resolve_jobs_of(jobs, jobs < 0 ? process_cpu_count() : 0); }

bool in_pool_worker() noexcept { return worker_progress_slot() != nullptr; }

ParallelOptions options_for(ParallelOptions options, std::size_t n) {
    const int jobs = resolve_jobs_for(options);
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
    jobs_ = detail::resolve_jobs_for(opts_);
    // On the "mpi" context the tasks run on the ranks, even with one worker.
    in_place_ = jobs_ == 1 && !detail::on_cluster(opts_.context);
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
