// mp::Initializer's non-template half, and the engine options of the pool front ends.
#include "multiproc/detail/initializer.hpp"

#include <algorithm>

namespace mp {

std::optional<detail::OwnedCall> Initializer::call() const {
    if (!call_) return std::nullopt;
    detail::OwnedCall c;
    c.bytes = call_->bytes;
    for (const auto& fd : call_->fds) c.fds.push_back(fd.dup());
    return c;
}

namespace detail {

EngineOptions front_end_engine_options(const char* owner, int processes,
                                       const Initializer& initializer,
                                       std::size_t max_tasks_per_child,
                                       const std::optional<Context>& context, int retries) {
    EngineOptions eo;
    eo.processes = processes;
    eo.context = context;
    eo.initializer = initializer.call();
    eo.max_tasks_per_child = max_tasks_per_child;
    eo.retries = std::max(retries, 0);
    eo.owner = owner;
    return eo;
}

}  // namespace detail

}  // namespace mp
