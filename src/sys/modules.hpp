// The loaded modules of this process (the executable, its shared libraries, those dlopen'ed
// later), each with its load base, its mapped segments, its path and a stable identity: the
// GNU build id read from the module's PT_NOTE segments in memory, or, for a module linked
// without one, a hash of its path, size and modification time.
//
// The list is a snapshot, rebuilt when the dynamic loader's load/unload counters
// (dl_phdr_info::dlpi_adds / dlpi_subs) changed since it was taken; snapshots are immutable and
// shared, so any thread may read one while another thread loads a library. The entry points of a
// module (where its functions start) come from its file, read once per module (sys/elf.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sys/elf.hpp"

namespace mp::sys {

/// How a module's identity was obtained.
enum class ModuleIdKind : std::uint8_t {
    gnu_build_id = 1,  ///< the NT_GNU_BUILD_ID note the linker wrote
    file_hash = 2,     ///< no build id: 16 bytes of hash over path, size and mtime
};

/// A module's identity: the kind and the identifying bytes.
struct ModuleId {
    ModuleIdKind kind = ModuleIdKind::gnu_build_id;
    std::string bytes;  // binary, not text

    friend bool operator==(const ModuleId&, const ModuleId&) = default;
};

/// One loaded module as seen through dl_iterate_phdr.
struct LoadedModule {
    std::uintptr_t base = 0;  ///< load bias: run-time address = base + link-time address
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> segments;  ///< PT_LOAD [lo, hi)
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> code;  ///< executable PT_LOAD [lo, hi)
    std::string path;      ///< absolute path of the file (the main executable's via /proc/self/exe)
    bool is_main = false;  ///< the program itself (dl_iterate_phdr's first entry)
    ModuleId id;

    /// True when addr lies in one of the module's mapped segments.
    [[nodiscard]] bool contains(std::uintptr_t addr) const noexcept;
    /// True when addr lies in one of the module's executable segments.
    [[nodiscard]] bool contains_code(std::uintptr_t addr) const noexcept;
};

using ModuleList = std::vector<LoadedModule>;

/// The current snapshot of loaded modules (rebuilt only when a module was loaded or unloaded).
[[nodiscard]] std::shared_ptr<const ModuleList> loaded_modules();

/// The module whose segments contain addr, or nullptr.
[[nodiscard]] const LoadedModule* find_module_containing(const ModuleList& list,
                                                         std::uintptr_t addr);
/// The module with this identity, or nullptr.
[[nodiscard]] const LoadedModule* find_module_by_id(const ModuleList& list, ModuleIdKind kind,
                                                    std::string_view bytes);
/// The module loaded from this path (compared after resolving symlinks), or nullptr.
[[nodiscard]] const LoadedModule* find_module_by_path(const ModuleList& list,
                                                      std::string_view path);
/// The main executable of the list (its first entry), or nullptr if the list is empty.
[[nodiscard]] const LoadedModule* main_module(const ModuleList& list);

/// Human-readable identity: "build id 1a2b..." or "file hash 1a2b... (no build id)".
[[nodiscard]] std::string describe(const ModuleId& id);

/// The identity of the module file at `path`, read from the file without loading it: its build
/// id note, else the path/size/mtime hash (mp::ProcessError when it is not a readable ELF file).
[[nodiscard]] ModuleId file_module_id(const std::string& path);

/// The entry points of a loaded module, as offsets from its base: every function, and the thunks
/// (functions named with one of `thunk_prefixes`). Read once from the module's file, after
/// checking that the file still has the module's id, then cached by id (mp::ProcessError when
/// the file cannot be read or changed).
[[nodiscard]] std::shared_ptr<const ElfFunctions> entry_points(
    const LoadedModule& m, std::span<const std::string_view> thunk_prefixes);

/// The module whose load bias is `base` (a link_map's l_addr), or nullptr.
[[nodiscard]] const LoadedModule* find_module_by_base(const ModuleList& list, std::uintptr_t base);

/// dlopen(path, RTLD_NOW | RTLD_LOCAL): the library's handle, or nullptr with the loader's
/// reason in `error`.
[[nodiscard]] void* open_library(const std::string& path, std::string& error);
/// The load bias of a library open_library loaded (its link_map's l_addr), or nothing.
[[nodiscard]] std::optional<std::uintptr_t> library_base(void* handle) noexcept;
/// dlclose(handle): unloads the library unless something else holds it.
void close_library(void* handle) noexcept;

}  // namespace mp::sys
