#include "multiproc/bootstrap.hpp"

#include "spawn.hpp"

namespace mp {

void init(int argc, char** argv) { detail::enter_if_child(argc, argv); }

}  // namespace mp
