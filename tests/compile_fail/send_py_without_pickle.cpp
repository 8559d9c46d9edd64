// Must NOT compile: Connection::send_py without multiproc/pickle.hpp (the umbrella leaves the
// pickle codec out); the error names mp::detail::PyCodec instead of failing at link time.
#include "multiproc/multiproc.hpp"

int main() {
    auto [a, b] = mp::Pipe();
    a.send_py(42);
}
