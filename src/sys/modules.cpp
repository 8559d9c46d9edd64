#include "sys/modules.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "multiproc/errors.hpp"
#include "sys/elf.hpp"

namespace mp::sys {

namespace {

// What the dl_iterate_phdr callback copies out while the loader's lock is held; the slower
// work (realpath, stat) happens after the lock is released.
struct RawModule {
    std::uintptr_t base = 0;
    std::string name;
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> segments, code;
    std::string build_id;
};

struct Scan {
    unsigned long long adds = 0, subs = 0;
    std::vector<RawModule> modules;
};

// Reads NT_GNU_BUILD_ID from the module's PT_NOTE segments, in memory. A note segment is read
// only when it lies inside a mapped PT_LOAD segment (it always does with GNU ld, gold, lld and
// mold, but a hand-made ELF could say otherwise).
std::string read_build_id(const dl_phdr_info& info) {
    for (int i = 0; i < info.dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info.dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        bool mapped = false;
        for (int j = 0; j < info.dlpi_phnum; ++j) {
            const ElfW(Phdr)& ld = info.dlpi_phdr[j];
            if (ld.p_type == PT_LOAD && ph.p_vaddr >= ld.p_vaddr &&
                ph.p_vaddr + ph.p_filesz <= ld.p_vaddr + ld.p_filesz)
                mapped = true;
        }
        if (!mapped) continue;
        const auto* p = reinterpret_cast<const unsigned char*>(info.dlpi_addr + ph.p_vaddr);
        std::string id = build_id_in_notes({p, ph.p_filesz}, ph.p_align == 8 ? 8 : 4);
        if (!id.empty()) return id;
    }
    return {};
}

int collect(dl_phdr_info* info, std::size_t size, void* arg) {
    auto* scan = static_cast<Scan*>(arg);
    if (scan->modules.empty() &&
        size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        scan->adds = info->dlpi_adds;
        scan->subs = info->dlpi_subs;
    }
    RawModule m;
    m.base = info->dlpi_addr;
    m.name = info->dlpi_name ? info->dlpi_name : "";
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        m.segments.emplace_back(lo, lo + ph.p_memsz);
        if (ph.p_flags & PF_X) m.code.emplace_back(lo, lo + ph.p_memsz);
    }
    m.build_id = read_build_id(*info);
    scan->modules.push_back(std::move(m));
    return 0;
}

// Only the loader's counters: the first callback carries them, so stop there.
int counters(dl_phdr_info* info, std::size_t size, void* arg) {
    auto* c = static_cast<std::pair<unsigned long long, unsigned long long>*>(arg);
    if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *c = {info->dlpi_adds, info->dlpi_subs};
    return 1;
}

std::string self_exe() {
    std::array<char, PATH_MAX + 1> buf{};
    const ssize_t n = ::readlink("/proc/self/exe", buf.data(), PATH_MAX);
    return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

std::string absolute(const std::string& path) {
    if (path.empty()) return path;
    std::unique_ptr<char, void (*)(void*)> r(::realpath(path.c_str(), nullptr), std::free);
    return r ? std::string(r.get()) : path;
}

std::uint64_t fnv1a(std::uint64_t h, const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

// The fallback identity of a module without a build id: it tells apart two different files at
// one path only through their size and mtime, which is why real build ids are preferred.
std::string file_hash(const std::string& path) {
    struct stat st {};
    std::uint64_t parts[3] = {0, 0, 0};
    if (::stat(path.c_str(), &st) == 0)
        parts[0] = static_cast<std::uint64_t>(st.st_size),
        parts[1] = static_cast<std::uint64_t>(st.st_mtim.tv_sec),
        parts[2] = static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
    std::uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    for (auto& x : h) {
        x = fnv1a(x, path.data(), path.size());
        x = fnv1a(x, parts, sizeof parts);
    }
    return std::string(reinterpret_cast<const char*>(h), sizeof h);
}

ModuleId id_of_file(const ElfFile& f, const std::string& path) {
    std::string id = f.build_id();
    if (!id.empty()) return {ModuleIdKind::gnu_build_id, std::move(id)};
    return {ModuleIdKind::file_hash, file_hash(path)};
}

std::shared_ptr<const ModuleList> build(Scan& scan) {
    auto list = std::make_shared<ModuleList>();
    list->reserve(scan.modules.size());
    for (std::size_t i = 0; i < scan.modules.size(); ++i) {
        RawModule& r = scan.modules[i];
        LoadedModule m;
        m.base = r.base;
        m.segments = std::move(r.segments);
        m.code = std::move(r.code);
        m.is_main = i == 0;
        m.path = m.is_main ? self_exe() : absolute(r.name);
        if (!r.build_id.empty()) m.id = {ModuleIdKind::gnu_build_id, std::move(r.build_id)};
        else m.id = {ModuleIdKind::file_hash, file_hash(m.path)};
        list->push_back(std::move(m));
    }
    return list;
}

struct Cache {
    std::mutex mu;
    std::shared_ptr<const ModuleList> list;
    unsigned long long adds = ~0ULL, subs = ~0ULL;
    // Entry tables by module id: they outlive snapshots (a library loaded later does not make
    // the executable's table stale), and two files with one build id have one table.
    std::vector<std::pair<ModuleId, std::shared_ptr<const ElfFunctions>>> entries;
};

Cache& cache() {
    // Function-local: usable from other translation units' static initializers. A fork child of
    // a multi-threaded parent must not inherit the mutex locked by another thread (a Pool
    // worker resolves calls right after fork): fork waits for it and both sides release it.
    // glibc drops these handlers when a module holding this code is dlclose'd.
    static Cache c;
    static const int registered =
        ::pthread_atfork([] { c.mu.lock(); }, [] { c.mu.unlock(); }, [] { c.mu.unlock(); });
    static_cast<void>(registered);
    return c;
}

}  // namespace

bool LoadedModule::contains(std::uintptr_t addr) const noexcept {
    for (auto [lo, hi] : segments)
        if (addr >= lo && addr < hi) return true;
    return false;
}

// Hot: a fork child resolving its target runs it (see src/current_process.cpp).
[[gnu::hot]] bool LoadedModule::contains_code(std::uintptr_t addr) const noexcept {
    for (auto [lo, hi] : code)
        if (addr >= lo && addr < hi) return true;
    return false;
}

std::shared_ptr<const ModuleList> loaded_modules() {
    std::pair<unsigned long long, unsigned long long> now{0, 0};
    ::dl_iterate_phdr(counters, &now);
    Cache& c = cache();
    {
        std::lock_guard lk(c.mu);
        if (c.list && c.adds == now.first && c.subs == now.second) return c.list;
    }
    // Scan without holding our lock: the loader takes its own, and a library constructor run by
    // a concurrent dlopen may itself come here.
    Scan scan;
    ::dl_iterate_phdr(collect, &scan);
    auto list = build(scan);
    std::lock_guard lk(c.mu);
    c.list = list;
    c.adds = scan.adds;
    c.subs = scan.subs;
    return list;
}

const LoadedModule* find_module_containing(const ModuleList& list, std::uintptr_t addr) {
    for (const auto& m : list)
        if (m.contains(addr)) return &m;
    return nullptr;
}

const LoadedModule* find_module_by_id(const ModuleList& list, ModuleIdKind kind,
                                      std::string_view bytes) {
    for (const auto& m : list)
        if (m.id.kind == kind && m.id.bytes == bytes) return &m;
    return nullptr;
}

const LoadedModule* find_module_by_path(const ModuleList& list, std::string_view path) {
    if (path.empty()) return nullptr;
    const std::string abs = absolute(std::string(path));
    for (const auto& m : list)
        if (m.path == path || m.path == abs) return &m;
    return nullptr;
}

const LoadedModule* find_module_by_base(const ModuleList& list, std::uintptr_t base) {
    for (const auto& m : list)
        if (m.base == base && !m.is_main) return &m;
    return nullptr;
}

const LoadedModule* main_module(const ModuleList& list) {
    return list.empty() ? nullptr : &list.front();
}

std::string describe(const ModuleId& id) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string h;
    h.reserve(id.bytes.size() * 2);
    for (unsigned char b : id.bytes) {
        h += hex[b >> 4];
        h += hex[b & 15];
    }
    if (id.kind == ModuleIdKind::gnu_build_id) return "build id " + h;
    return "file hash " + h + " (no build id: path, size and mtime)";
}

ModuleId file_module_id(const std::string& path) { return id_of_file(ElfFile(path), path); }

std::shared_ptr<const ElfFunctions> entry_points(const LoadedModule& m,
                                                 std::span<const std::string_view> thunk_prefixes) {
    Cache& c = cache();
    {
        std::lock_guard lk(c.mu);
        for (const auto& [id, table] : c.entries)
            if (id == m.id) return table;
    }
    // The executable through /proc/self/exe: the very file that is running, even if its path
    // now names another. A library by its path, so its id is checked again: the file read must
    // be the one loaded, else its symbols would describe other code.
    const ElfFile file(m.is_main ? std::string("/proc/self/exe") : m.path);
    if (id_of_file(file, m.path) != m.id)
        throw ProcessError("multiproc: module " + m.path +
                           " changed on disk since it was loaded (" + describe(m.id) +
                           " in memory): its entry points cannot be read");
    auto table = std::make_shared<const ElfFunctions>(file.functions(thunk_prefixes));
    std::lock_guard lk(c.mu);
    for (const auto& [id, other] : c.entries)
        if (id == m.id) return other;  // another thread read it meanwhile
    c.entries.emplace_back(m.id, table);
    return table;
}

void* open_library(const std::string& path, std::string& error) {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* err = ::dlerror();
        error = err ? err : "dlopen failed";
    }
    return h;
}

std::optional<std::uintptr_t> library_base(void* handle) noexcept {
    link_map* lm = nullptr;
    if (::dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm) return lm->l_addr;
    return std::nullopt;
}

void close_library(void* handle) noexcept { ::dlclose(handle); }

}  // namespace mp::sys
