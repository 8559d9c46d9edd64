// Must compile: the control for the forkserver preload check (same include, a shippable call).
#include <cstddef>
#include <string>

#include "multiproc/context.hpp"

void build(std::size_t n, std::string name) { static_cast<void>(n + name.size()); }

int main() {
    mp::set_forkserver_preload(build, std::size_t{3}, std::string("tables"));
    mp::set_forkserver_preload();
}
