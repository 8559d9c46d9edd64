#include "multiproc/bootstrap.hpp"

namespace mp {

void init(int, char**) {}

}  // namespace mp
