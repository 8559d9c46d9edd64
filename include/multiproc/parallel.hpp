// mp::parallel_map and mp::parallel_for: joblib's Parallel(n_jobs)(delayed(f)(x) for x in xs)
// as one call, on the task engine (DESIGN.md 5); mp::Parallel keeps its workers across calls.
//
//   std::vector<int> r = mp::parallel_map(square, std::views::iota(0, 1'000'000));
//   mp::parallel_for(items, process_one, {.jobs = -1, .progress = true});
//   mp::Parallel par({.jobs = 2});         // workers reused by every call (joblib's
//   auto a = par.map(f, xs);               //   `with Parallel(n_jobs=2) as parallel:`)
//   auto b = par.map(g, ys);
//
// Options: jobs (-1: every CPU this process may use, -2: all but one, as joblib's n_jobs; 1:
// run in the calling process, as joblib does, which is also the way to debug f), batch_size
// (0: auto, batches grow until each takes about 2 ms of work, as joblib's auto batching),
// progress (a bar on stderr: done/total, rate and ETA, redrawn in place when stderr is a
// terminal, a plain line now and then otherwise), context (the start method of the workers).
//
// Results come back in input order. When items fail, the first failure stops the sending of
// new items, the items already in workers finish, and the exception of the lowest failing
// item is rethrown (the same standard type, else mp::RemoteError with the remote stack trace).
// A worker that dies fails only the item it was running (mp::BrokenProcessPool naming its pid
// and signal or exit code), which then ends the call as any failure does.
//
// Across processes: f travels by identity (DESIGN.md 2): an unshippable f, item or result is a
// compile-time error saying why. Items are copied into batches; an item that is a std::vector
// of a trivially copyable type travels as its own task, and from 1 MiB on through shared
// memory (a memfd), read in place by an f taking std::span<const T> (joblib memmaps large
// arrays the same way).
//
// Workers: the free functions start `jobs` workers (no more than there are items) and stop
// them before returning, so that under the fork start method each call's workers see the
// parent's memory as it is at the call. mp::Parallel keeps one set of workers for all its
// calls (cheaper for many short calls; under fork its workers see the parent as it was when
// the Parallel was made).
//
// Thread safety: parallel_map/parallel_for may run in several threads at once; one
// mp::Parallel may serve several threads at once. Blocking: every call blocks until done;
// signal handlers never make it fail (docs/signals.md); Ctrl-C under an mp::SigintGuard makes
// it throw mp::KeyboardInterrupt after stopping its workers. Inside a worker of multiproc's pools
// (nested parallelism) the calls run in that worker, as joblib's nested Parallel does.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/context.hpp"
#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/map_source.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/detail/task.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/progress.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

/// Options of parallel_map, parallel_for and Parallel (joblib's n_jobs, batch_size, verbose).
struct ParallelOptions {
    int jobs = -1;               ///< worker processes: -1 all CPUs, -2 all but one, 1 in-process
    std::size_t batch_size = 0;  ///< items per task; 0: adapt to the task time
    bool progress = false;       ///< progress bar on stderr
    std::optional<Context> context{};  ///< start method of the workers (default: the default)
};

namespace detail {

/// joblib's n_jobs resolved to a worker count (mp::UsageError for 0).
int resolve_jobs(int jobs);
/// True inside a worker process of a multiproc pool (nested calls then run in place).
bool in_pool_worker() noexcept;
/// Starts a parallel engine of `processes` workers.
std::shared_ptr<Engine> make_parallel_engine(int processes, const std::optional<Context>& context);

/// Runs the source to its end on `engine`, drawing the progress bar if asked.
template <class Src>
void run_to_end(Engine& engine, const std::shared_ptr<Src>& src, bool progress) {
    engine.submit(src);
    wait_with_progress(*src, progress ? progress_bar() : Progress(), "parallel_map");
}

/// jobs == 1, or nested in a worker: f over the items in this process.
template <class R, class F, class V>
auto run_in_place(const F& f, std::vector<V>& items, bool progress) {
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    std::vector<Stored> out;
    out.reserve(items.size());
    StepProgress bar(progress ? progress_bar() : Progress(), items.size(), "parallel_map");
    for (std::size_t i = 0; i < items.size(); ++i) {
        if constexpr (std::is_void_v<R>) {
            detail::invoke(f, items[i]);
            out.emplace_back();
        } else {
            out.push_back(static_cast<R>(detail::invoke(f, items[i])));
        }
        bar.step();
    }
    bar.end();
    return out;
}

}  // namespace detail

/// Worker processes kept for several parallel_map / parallel_for calls (joblib's
/// `with Parallel(n_jobs=...) as parallel:`). Not copyable; the destructor stops the workers.
class Parallel {
public:
    /// Starts the workers (none when jobs resolves to 1). mp::UsageError for jobs == 0.
    explicit Parallel(ParallelOptions options = {});
    Parallel(const Parallel&) = delete;
    Parallel& operator=(const Parallel&) = delete;
    /// Stops the workers (waiting for nothing: every call has returned).
    ~Parallel();

    /// [f(x) for x in range] in input order; rethrows the lowest failing item's exception.
    template <class F, std::ranges::input_range Range>
    auto map(const F& f, Range&& range) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_map<F, V>(), "see the diagnostic above");
        using R = detail::map_result_t<F, V>;
        static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                      "mp::parallel_map: the result type must be default constructible");
        auto stored = run<R>(f, detail::materialize<V>(std::forward<Range>(range)));
        if constexpr (!std::is_void_v<R>) return stored;
    }

    /// f(x) for every x in range, for its effects (f's results are dropped).
    template <std::ranges::input_range Range, class F>
    void for_each(Range&& range, const F& f) {
        using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        static_assert(detail::check_map<F, V>(), "see the diagnostic above");
        using R = detail::map_result_t<F, V>;
        static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                      "mp::parallel_for: the result type must be default constructible");
        static_cast<void>(run<R>(f, detail::materialize<V>(std::forward<Range>(range))));
    }

    /// The number of worker processes (1 when running in-process).
    [[nodiscard]] int jobs() const noexcept { return jobs_; }

private:
    template <class R, class F, class V>
    auto run(const F& f, std::vector<V> items) {
        if (in_place_ || detail::in_pool_worker())
            return detail::run_in_place<R>(f, items, opts_.progress);
        using Src = detail::OrderedMapSource<std::decay_t<F>, V, R>;
        std::shared_ptr<detail::Engine> engine = acquire();
        auto src = std::make_shared<Src>(f, std::move(items), opts_.batch_size, *engine, true);
        try {
            detail::run_to_end(*engine, src, opts_.progress);
        } catch (...) {
            // Interrupted: stop the workers now (a later call starts new ones).
            discard();
            throw;
        }
        return src->take_results();
    }
    std::shared_ptr<detail::Engine> acquire();
    void discard() noexcept;

    ParallelOptions opts_;
    int jobs_ = 1;
    bool in_place_ = false;
    std::mutex m_;
    std::shared_ptr<detail::Engine> engine_;
};

namespace detail {
/// The options a one-call Parallel gets for `n` items: no more workers than items (but two at
/// least, so that a small input still runs out of process).
ParallelOptions options_for(ParallelOptions options, std::size_t n);
}  // namespace detail

/// [f(x) for x in range] computed by worker processes, in input order (joblib's
/// Parallel(n_jobs)(delayed(f)(x) for x in range)); see the header comment for options.
template <class F, std::ranges::input_range Range>
auto parallel_map(const F& f, Range&& range, ParallelOptions options = {}) {
    using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    static_assert(detail::check_map<F, V>(), "see the diagnostic above");
    auto items = detail::materialize<V>(std::forward<Range>(range));
    Parallel p(detail::options_for(std::move(options), items.size()));
    return p.map(f, std::move(items));
}

/// f(x) for every x in range, in worker processes, for its effects; returns when all are done.
template <std::ranges::input_range Range, class F>
void parallel_for(Range&& range, const F& f, ParallelOptions options = {}) {
    using V = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    static_assert(detail::check_map<F, V>(), "see the diagnostic above");
    auto items = detail::materialize<V>(std::forward<Range>(range));
    Parallel p(detail::options_for(std::move(options), items.size()));
    p.for_each(std::move(items), f);
}

}  // namespace mp
