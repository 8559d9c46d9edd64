// The control of send_py_without_pickle.cpp: with multiproc/pickle.hpp the same call compiles.
#include "multiproc/multiproc.hpp"
#include "multiproc/pickle.hpp"

int main() {
    auto [a, b] = mp::Pipe();
    a.send_py(42);
    return b.recv_py<int>() == 42 ? 0 : 1;
}
