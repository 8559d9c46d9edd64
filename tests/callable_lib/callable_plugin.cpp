// A plugin the test loads with dlopen at run time (not linked): a spawned child has to dlopen
// it itself, by the path the identity carries, to resolve functions that live here.
#include <cstdint>

#include "multiproc/callable.hpp"
#include "multiproc/detail/task_protocol.hpp"

extern "C" {

/// x * x * x.
int callable_plugin_cube(int x) { return x * x * x; }

/// Packages, from inside the plugin, a task whose thunk and closure both live here: x + bias.
void callable_plugin_package(int x, long bias, mp::detail::ShippedCall* out) {
    auto add = [bias](int v) { return static_cast<long>(v) + bias; };
    *out = mp::detail::package_task(add, x);
}
}
