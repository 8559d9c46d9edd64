// Built against the installed package: proves find_package(multiproc) and the headers work.
#include <multiproc/multiproc.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    mp::init(argc, argv);
    auto bytes = mp::dumps(std::string("consumer"));
    std::printf("consumer: %s\n", mp::loads<std::string>(bytes).c_str());
    return 0;
}
