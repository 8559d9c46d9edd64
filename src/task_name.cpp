#include "task_name.hpp"

#include <cstdint>

#include "demangle.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/reduction.hpp"
#include "sys/symbols.hpp"

namespace mp::detail {

std::string thunk_target_type(const std::string& s) {
    const auto open = s.find('<');
    if (open == std::string::npos) return {};
    int depth = 0;
    for (std::size_t i = open + 1; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '<' || c == '(') ++depth;
        else if ((c == '>' || c == ')') && depth > 0) --depth;
        else if ((c == ',' || c == '>') && depth == 0) return s.substr(open + 1, i - open - 1);
    }
    return {};
}

namespace {

std::string symbol_at(std::uintptr_t addr) {
    const sys::CodeLocation loc = sys::locate_code(reinterpret_cast<const void*>(addr));
    return loc.symbol ? demangle(loc.symbol) : std::string();
}

}  // namespace

std::string describe_task_target(std::span<const std::byte> call) noexcept {
    try {
        Decoder d(call);
        const auto thunk = reinterpret_cast<std::uintptr_t>(open_package(d));
        const std::string target = thunk_target_type(symbol_at(thunk));
        // A function pointer's identity follows the thunk's; a function object's type is all
        // there is to name it by.
        if (target.find("(*)") != std::string::npos) {
            std::string name = symbol_at(resolve_code_address(d, EntryKind::function));
            return name.empty() ? "a function of type " + target : name;
        }
        return target.empty() ? std::string("a task") : target;
    } catch (...) {
        return "a task";
    }
}

}  // namespace mp::detail
