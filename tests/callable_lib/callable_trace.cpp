// A library whose constructor leaves a visible trace: it creates the file that
// MP_CALLABLE_TRACE_FILE names. Never linked nor loaded on purpose: the tests forge identities
// naming it with another build id and check that the trace is absent (it was not loaded).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace {

[[gnu::constructor]] void leave_trace() {
    if (const char* path = std::getenv("MP_CALLABLE_TRACE_FILE")) {
        const int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) ::close(fd);
    }
}

}  // namespace

extern "C" int callable_trace_identity(int x) { return x; }
