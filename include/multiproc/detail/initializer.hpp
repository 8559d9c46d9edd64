// mp::Initializer: a function and its arguments run once in every worker of a Pool or a
// ProcessPoolExecutor before its first task, packaged at construction (checked at compile time
// like a task) and copied into each engine that uses it; and the engine options both front ends
// build from their worker settings.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>

#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/task.hpp"

namespace mp {

/// A function and its arguments, run once in every worker before its first task (Python's
/// initializer + initargs). Checked at compile time like a task.
class Initializer {
public:
    /// No initializer.
    Initializer() = default;
    /// Runs f(args...) in every worker at its start.
    template <class F, class... Args>
    explicit Initializer(const F& f, const Args&... args)
        : call_(std::make_shared<detail::OwnedCall>(detail::package_pool_task(f, args...))) {}
    /// True when there is none.
    [[nodiscard]] bool empty() const noexcept { return !call_; }
    /// A copy of the packaged call (descriptors duplicated), for an engine.
    [[nodiscard]] std::optional<detail::OwnedCall> call() const;

private:
    std::shared_ptr<const detail::OwnedCall> call_;
};

namespace detail {

/// The engine options of a pool front end (Pool, ProcessPoolExecutor): `processes` workers
/// started with `context`, each running `initializer` first and replaced after
/// `max_tasks_per_child` tasks (0: never), `retries` re-runs of a lost task, named `owner` in
/// error messages.
EngineOptions front_end_engine_options(const char* owner, int processes,
                                       const Initializer& initializer,
                                       std::size_t max_tasks_per_child,
                                       const std::optional<Context>& context, int retries);

}  // namespace detail

}  // namespace mp
