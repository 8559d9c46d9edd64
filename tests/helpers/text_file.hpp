// Reading what a test made a program write: a file's whole text, and counting in it.
#pragma once

#include <cstddef>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace mp::test {

/// The file's text; the file is removed.
inline std::string take_file(const std::string& path) {
    std::stringstream s;
    {
        std::ifstream in(path);
        s << in.rdbuf();
    }
    std::remove(path.c_str());
    return s.str();
}

/// How many times `what` occurs in `text` (overlaps counted).
inline std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace mp::test
