// The Process hello of DESIGN.md (Python: Process(target=worker, args=("process-1",))), under
// the start method named by argv[1]: fork (the default), spawn or forkserver.
//
//   hello_process            # fork
//   hello_process spawn      # a fresh exec of this program, entering through mp::init
//   hello_process forkserver # forked by a small server process started on first use
#include <cstdio>
#include <multiproc/bootstrap.hpp>
#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <string>

// A plain function: it ships by identity, so it runs under every start method.
void worker(std::string name) {
    std::printf("Hello from %s (%s, pid %d, parent %d)\n", name.c_str(),
                mp::current_process().name().c_str(), static_cast<int>(mp::current_process().pid()),
                static_cast<int>(mp::parent_process()->pid()));
}

int main(int argc, char** argv) {
    mp::init(argc, argv);  // first thing in main: a spawned child runs its target here
    const char* method = argc > 1 ? argv[1] : "fork";
    mp::set_start_method(method);  // an unknown name is an mp::UsageError
    std::printf("start method: %s\n", mp::get_start_method()->c_str());
    std::fflush(stdout);
    mp::Process p(worker, std::string("process-1"));
    p.start();
    p.join();
    std::printf("%s exited with code %d\n", p.name().c_str(), *p.exitcode());
    return *p.exitcode();
}
