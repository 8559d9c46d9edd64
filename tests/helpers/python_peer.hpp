// Real Python interpreters as test peers: the interpreters a wire test must cover (Debian's
// python3, 3.11, and pyenv's 3.12 and 3.13), and a Python script run as a raw child whose stdout
// the test reads line by line.
#pragma once

#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "helpers/raw_child.hpp"
#include "multiproc/detail/fd.hpp"
#include "sys/io.hpp"

extern char** environ;

namespace mp::test {

/// The interpreters found, and a message for each required one that is missing (a test
/// reports those as failures: a wire test must not pass by not running).
struct Interpreters {
    std::vector<std::string> found;
    std::vector<std::string> missing;
};

/// Debian's /usr/bin/python3 (3.11) and pyenv's newest 3.12.x and 3.13.x ($PYENV_ROOT, else
/// ~/.pyenv): all three are required.
inline Interpreters required_interpreters() {
    Interpreters out;
    if (std::filesystem::exists("/usr/bin/python3")) out.found.push_back("/usr/bin/python3");
    else out.missing.push_back("Debian's /usr/bin/python3 (apt-get install python3)");
    const char* env = std::getenv("PYENV_ROOT");
    const char* home = std::getenv("HOME");
    const std::filesystem::path root =
        env ? env : std::filesystem::path(home ? home : "/root") / ".pyenv";
    for (const std::string v : {"3.12", "3.13"}) {
        std::string best;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(root / "versions", ec)) {
            const std::string name = e.path().filename().string();
            if (name.rfind(v + ".", 0) == 0 && std::filesystem::exists(e.path() / "bin/python3") &&
                name > best)
                best = name;
        }
        if (best.empty())
            out.missing.push_back("pyenv's Python " + v + " under " + (root / "versions").string() +
                                  " (pyenv install " + v + ")");
        else out.found.push_back((root / "versions" / best / "bin/python3").string());
    }
    return out;
}

/// s in hex (how the Python peers take an authkey on their command line).
inline std::string hex(std::string_view s) {
    static const char* digits = "0123456789abcdef";
    std::string h;
    for (unsigned char ch : s) {
        h += digits[ch >> 4];
        h += digits[ch & 15];
    }
    return h;
}

/// A Python interpreter running a script with arguments; its stdout is a pipe to the test.
class PythonPeer {
public:
    PythonPeer(const std::string& python, const std::string& script,
               const std::vector<std::string>& args) {
        auto p = mp::sys::make_pipe();
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p.write.get(), 1);
        std::vector<std::string> all{python, script};
        all.insert(all.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : all) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t pid = -1;
        const int err = ::posix_spawn(&pid, python.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (err) throw std::system_error(err, std::system_category(), "posix_spawn " + python);
        child_ = RawChild(pid);
        out_ = std::move(p.read);
    }
    /// One line of the peer's stdout (without the newline); empty at its end.
    std::string line() {
        std::string s;
        char ch;
        while (mp::sys::read_full(out_.get(), &ch, 1) == 1 && ch != '\n') s += ch;
        return s;
    }
    /// Waits for the peer: its exit code (or -signal).
    int join() { return child_.join(); }

private:
    RawChild child_;
    mp::detail::UniqueFd out_;
};

}  // namespace mp::test
