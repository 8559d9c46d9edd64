#include "context_cluster.hpp"

#include <atomic>

namespace mp::detail {

namespace {
// Constant-initialized, so that a registration from another library's static initializer
// happens-before any use whatever the order of initialization.
constinit std::atomic<const ClusterHooks*> g_hooks{nullptr};
}  // namespace

void register_cluster(const ClusterHooks* hooks) noexcept { g_hooks.store(hooks); }

const ClusterHooks* cluster() noexcept { return g_hooks.load(); }

}  // namespace mp::detail
