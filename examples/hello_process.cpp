// The Process hello of DESIGN.md (Python: Process(target=worker, args=("process-1",))).
#include <cstdio>
#include <multiproc/bootstrap.hpp>
#include <multiproc/process.hpp>
#include <string>

void worker(std::string name) {
    std::printf("Hello from %s (%s, pid %d, parent %d)\n", name.c_str(),
                mp::current_process().name().c_str(), static_cast<int>(mp::current_process().pid()),
                static_cast<int>(mp::parent_process()->pid()));
}

int main(int argc, char** argv) {
    mp::init(argc, argv);  // first thing in main: a spawned child would run its work here
    mp::set_start_method("fork");
    mp::Process p(worker, std::string("process-1"));
    p.start();
    p.join();
    std::printf("%s exited with code %d\n", p.name().c_str(), *p.exitcode());
    return *p.exitcode();
}
