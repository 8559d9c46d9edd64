// Fuzzes the ELF reader (src/sys/elf.cpp): a received identity names a file, so the file is input
// too. Each input is written to one file in a private temporary directory, then read as a module
// would be before it is loaded (its build id) and as a loaded module's entry points are (its
// symbol tables). mp::ProcessError is the right answer to a file that is not a sound ELF file.
// Seeds: tests/fuzz/make_elf_seeds.py writes tests/fuzz/corpus/elf/.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "multiproc/errors.hpp"
#include "sys/elf.hpp"

namespace {

// One directory for the whole run, removed at exit.
const std::string& file_path() {
    static const std::string path = [] {
        static char dir[] = "/tmp/mp_elf_fuzzXXXXXX";
        if (!::mkdtemp(dir)) std::abort();
        std::atexit([] {
            ::unlink((std::string(dir) + "/module.so").c_str());
            ::rmdir(dir);
        });
        return std::string(dir) + "/module.so";
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string& path = file_path();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) std::abort();
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) std::abort();
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    constexpr std::string_view prefixes[] = {"_ZN2mp6detail5thunkI"};
    try {
        const mp::sys::ElfFile f(path);
        static_cast<void>(f.build_id());
        const auto fns = f.functions(prefixes);
        if (fns.prefixed.size() > fns.all.size()) std::abort();  // thunks are functions too
    } catch (const mp::ProcessError&) {
    }
    return 0;
}
