#include "multiproc/bootstrap.hpp"

#include "context_cluster.hpp"
#include "spawn.hpp"

namespace mp {

void init(int argc, char** argv) {
    detail::enter_if_child(argc, argv);
    // A spawned child never gets here; an MPI rank other than 0 serves tasks and exits inside.
    if (const auto* hooks = detail::cluster()) hooks->enter(argc, argv);
}

}  // namespace mp
