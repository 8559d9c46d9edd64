// Function identities (module id + path + offset) and the type-erased half of shipped calls.
#include "multiproc/callable.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "demangle.hpp"
#include "sys/modules.hpp"

namespace mp::detail {

namespace {

constexpr std::uint8_t flag_main = 1;

template <class T>
void put(std::vector<std::byte>& out, const T& v) {
    const auto* b = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), b, b + sizeof v);
}

void put_bytes(std::vector<std::byte>& out, std::string_view s) {
    const auto* b = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), b, b + s.size());
}

std::string hex(std::uintptr_t v) {
    char buf[2 + 2 * sizeof v + 1];
    std::snprintf(buf, sizeof buf, "0x%zx", static_cast<std::size_t>(v));
    return buf;
}

//   u8 flags | u8 id kind | u8 n | n id bytes | u64 path length | path | u64 offset
void append_identity(std::vector<std::byte>& out, const sys::LoadedModule& m, std::uintptr_t addr) {
    const std::uint8_t flags = m.is_main ? flag_main : 0;
    const auto kind = static_cast<std::uint8_t>(m.id.kind);
    const auto n = static_cast<std::uint8_t>(m.id.bytes.size());
    // The main executable goes without its path: the receiver's own program is the only
    // candidate, and its path may differ (another host, a moved binary) without harm.
    const std::string_view path = m.is_main ? std::string_view() : std::string_view(m.path);
    out.reserve(out.size() + 3 + n + 16 + path.size());
    put(out, flags);
    put(out, kind);
    put(out, n);
    put_bytes(out, m.id.bytes);
    put(out, static_cast<std::uint64_t>(path.size()));
    put_bytes(out, path);
    put(out, static_cast<std::uint64_t>(addr - m.base));
}

const sys::LoadedModule& module_for_code(const sys::ModuleList& list, std::uintptr_t addr) {
    const sys::LoadedModule* m = sys::find_module_containing(list, addr);
    if (!m || !m->contains_code(addr))
        throw ProcessError("multiproc: the function at " + hex(addr) +
                           " is not in the code of any loaded module (JIT-compiled or heap code "
                           "cannot be shipped by identity)");
    return *m;
}

struct WireIdentity {
    std::uint8_t flags = 0;
    sys::ModuleIdKind kind{};
    std::string_view id;
    std::string_view path;
    std::uint64_t offset = 0;
};

[[gnu::hot]] std::string_view take_view(Decoder& d, std::size_t n) {
    auto s = d.take(n);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
}

[[gnu::hot]] WireIdentity read_identity(Decoder& d) {
    WireIdentity w;
    std::uint8_t kind = 0, n = 0;
    d.read_bytes(&w.flags, 1);
    d.read_bytes(&kind, 1);
    d.read_bytes(&n, 1);
    if ((w.flags & ~flag_main) != 0 ||
        (kind != static_cast<std::uint8_t>(sys::ModuleIdKind::gnu_build_id) &&
         kind != static_cast<std::uint8_t>(sys::ModuleIdKind::file_hash)) ||
        n == 0)
        throw DecodeError("multiproc: corrupt call: malformed function identity");
    w.kind = static_cast<sys::ModuleIdKind>(kind);
    w.id = take_view(d, n);
    w.path = take_view(d, d.read_count(1));
    d.read_bytes(&w.offset, sizeof w.offset);
    if ((w.flags & flag_main) && !w.path.empty())
        throw DecodeError("multiproc: corrupt call: malformed function identity");
    return w;
}

std::string sender_module(const WireIdentity& w) {
    return w.flags & flag_main ? std::string("the main executable")
                               : "module " + std::string(w.path);
}

[[noreturn, gnu::cold]] void refuse_untrusted_code() {
    throw DecodeError("multiproc: refused a value that names code (a shipped function) from a peer "
                      "that is not trusted to: nothing was loaded or called (a Listener/Client "
                      "connection; AuthOptions::trust_code allows it)");
}

[[noreturn]] void mismatch(const sys::LoadedModule& here, const WireIdentity& w) {
    const sys::ModuleId theirs{w.kind, std::string(w.id)};
    throw ProcessError("multiproc: binary mismatch: module " + here.path +
                       (here.is_main ? " (the main executable)" : "") + " has " +
                       sys::describe(here.id) + " here, " + sys::describe(theirs) +
                       " in the sender; both processes must run the same binaries");
}

// The module of a received identity that no loaded module matches by id: the same file with
// other contents (a mismatch), or a shared library this process has not loaded yet.
const sys::LoadedModule* load_module(const WireIdentity& w,
                                     std::shared_ptr<const sys::ModuleList>& list) {
    if (w.flags & flag_main) mismatch(*sys::main_module(*list), w);
    const sys::ModuleId theirs{w.kind, std::string(w.id)};
    if (w.path.empty())
        throw ProcessError("multiproc: cannot resolve a shipped function: its module (" +
                           sys::describe(theirs) + ") is not loaded here and has no path");
    // Senders write the absolute path of the file they loaded; anything else would make dlopen
    // search its library path for another file than the one checked below.
    if (w.path.front() != '/' || w.path.find('\0') != std::string_view::npos)
        throw DecodeError("multiproc: corrupt call: a module path that is not absolute");
    if (const auto* m = sys::find_module_by_path(*list, w.path)) mismatch(*m, w);
    const std::string path(w.path);
    // The file's build id first: loading it would run its constructors, which must not happen
    // for a file that is not the sender's (DESIGN.md 11). A file swapped between this check and
    // dlopen is still caught by the check of the loaded module below, though after its
    // constructors ran; whoever can swap it can also edit what this program loads anyway.
    const sys::ModuleId on_disk = sys::file_module_id(path);
    if (on_disk != theirs)
        throw ProcessError(
            "multiproc: binary mismatch: module " + path + " has " + sys::describe(on_disk) +
            " here, " + sys::describe(theirs) +
            " in the sender; both processes must run the same binaries (not loaded)");
    // Loaded for good, as Python's import: the handle is never closed, so addresses resolved in
    // it stay valid for the life of the process.
    std::string err;
    void* h = sys::open_library(path, err);
    if (!h)
        throw ProcessError("multiproc: cannot load " + sender_module(w) + " (" +
                           sys::describe(theirs) +
                           "), which holds a function shipped from "
                           "another process: " +
                           err);
    list = sys::loaded_modules();
    if (const auto* m = sys::find_module_by_id(*list, w.kind, w.id)) return m;
    const sys::LoadedModule* other = nullptr;
    if (const auto base = sys::library_base(h)) other = sys::find_module_by_base(*list, *base);
    if (other) {
        const sys::LoadedModule copy = *other;
        sys::close_library(h);
        mismatch(copy, w);
    }
    sys::close_library(h);
    throw ProcessError("multiproc: binary mismatch: " + sender_module(w) +
                       " loaded here does not have the sender's " + sys::describe(theirs));
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

const char* const kShippable =
    " cannot be shipped to a process started with spawn or forkserver: only function pointers, "
    "captureless lambdas and lambdas or function objects whose captures are all trivially "
    "copyable can; use the fork start method or pass the data as an argument";

}  // namespace

namespace {

// A module id compared byte by byte: the ids are a few bytes, and a fork child resolving its
// target would otherwise page in the C library's memcmp for them. Hot, like everything a child
// runs before its target (current_process.cpp).
[[gnu::hot]] bool same_bytes(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) return false;
    return true;
}

// The main executable is never unloaded nor moved: its entry is kept apart, so identifying and
// resolving code in it (most calls: thunks and targets instantiated by the program) needs no
// look at the loader's list.
[[gnu::hot]] const sys::LoadedModule& main_exe() {
    static const sys::LoadedModule m = *sys::main_module(*sys::loaded_modules());
    return m;
}

void append_code_identity(std::vector<std::byte>& out, std::uintptr_t addr) {
    const sys::LoadedModule& main = main_exe();
    if (main.contains_code(addr)) return append_identity(out, main, addr);
    auto list = sys::loaded_modules();
    append_identity(out, module_for_code(*list, addr), addr);
}

// Thunks are known by their symbol names. A linker section gathering them (a table between
// __start_/__stop_ symbols) would need no names, but g++ 12 ignores section attributes on every
// template instantiation, and thunks are nothing else. Renaming a thunk means updating this.
constexpr std::string_view kThunkPrefixes[] = {
    "_ZN2mp6detail5thunkI",         // thunk<F, Finish, W...>       (callable.hpp)
    "_ZN2mp6detail11chunk_thunkI",  // chunk_thunk<F, R, A, Star>   (detail/task.hpp)
};

// The executable's table, read once (most calls resolve there).
[[gnu::hot]] const sys::ElfFunctions& main_entries() {
    static const std::shared_ptr<const sys::ElfFunctions> e =
        sys::entry_points(main_exe(), kThunkPrefixes);
    return *e;
}

[[noreturn]] void not_an_entry(const sys::LoadedModule& m, std::uint64_t offset, EntryKind kind,
                               bool has_symtab) {
    std::string what = "multiproc: refused a shipped call: offset " +
                       hex(static_cast<std::uintptr_t>(offset)) + " in module " + m.path +
                       (m.is_main ? " (the main executable)" : "") + " is not the start of " +
                       (kind == EntryKind::thunk ? "a multiproc thunk" : "a function") +
                       " this build can ship";
    if (!has_symtab)
        what += " (the module has no symbol table: it was stripped, so only the functions of its "
                "dynamic symbol table can be verified; ship from binaries stripped with "
                "--strip-debug at most, or give the function external linkage)";
    throw ProcessError(what);
}

// The address of an entry point: inside the module's code (else the bytes are corrupt) and the
// start of a function of the kind asked for (else it is refused: a call into the middle of a
// function, or to a function of another signature than a thunk's, must never happen).
[[gnu::hot]] std::uintptr_t entry_in(const sys::LoadedModule& m, std::uint64_t offset,
                                     EntryKind kind) {
    const std::uintptr_t addr = m.base + static_cast<std::uintptr_t>(offset);
    if (offset > UINTPTR_MAX - m.base || !m.contains_code(addr))
        throw DecodeError("multiproc: corrupt call: offset " +
                          hex(static_cast<std::uintptr_t>(offset)) +
                          " is outside the code of module " + m.path);
    std::shared_ptr<const sys::ElfFunctions> keep;
    const sys::ElfFunctions* e = nullptr;
    if (m.is_main) {
        e = &main_entries();
    } else {
        keep = sys::entry_points(m, kThunkPrefixes);
        e = keep.get();
    }
    const auto& table = kind == EntryKind::thunk ? e->prefixed : e->all;
    if (!std::binary_search(table.begin(), table.end(), offset))
        not_an_entry(m, offset, kind, e->has_symtab);
    return addr;
}

}  // namespace

std::vector<std::byte> code_identity(std::uintptr_t addr) {
    std::vector<std::byte> out;
    append_code_identity(out, addr);
    return out;
}

void encode_code_address(Encoder& e, std::uintptr_t addr) { append_code_identity(e.bytes(), addr); }

[[gnu::hot]] std::uintptr_t resolve_code_address(Decoder& d, EntryKind kind) {
    if (d.code_refused()) refuse_untrusted_code();
    const WireIdentity w = read_identity(d);
    const sys::LoadedModule& main = main_exe();
    if ((w.flags & flag_main) && w.kind == main.id.kind && same_bytes(w.id, main.id.bytes))
        return entry_in(main, w.offset, kind);
    auto list = sys::loaded_modules();
    const sys::LoadedModule* m = sys::find_module_by_id(*list, w.kind, w.id);
    if (!m) m = load_module(w, list);
    return entry_in(*m, w.offset, kind);
}

void warm_code_identities() {
    static_cast<void>(sys::loaded_modules());
    static_cast<void>(main_exe());
    try {
        static_cast<void>(main_entries());
    } catch (const ProcessError&) {
        // An unreadable executable file: each child will report it for the call it resolves.
    }
}

std::optional<ModuleInfo> module_of(std::uintptr_t addr) {
    auto list = sys::loaded_modules();
    const sys::LoadedModule* m = sys::find_module_containing(*list, addr);
    if (!m) return std::nullopt;
    ModuleInfo info;
    info.path = m->path;
    info.is_main = m->is_main;
    info.has_build_id = m->id.kind == sys::ModuleIdKind::gnu_build_id;
    info.id = sys::describe(m->id);
    const auto* b = reinterpret_cast<const std::byte*>(m->id.bytes.data());
    info.id_bytes.assign(b, b + m->id.bytes.size());
    info.base = m->base;
    info.offset = addr - m->base;
    return info;
}

std::string readable_type_name(const std::type_info& t) {
    std::string n = demangle(t.name());
    n = replace_all(
        std::move(n),
        "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >",
        "std::string");
    n = replace_all(std::move(n), "std::__cxx11::", "std::");
    return n;
}

std::string target_reason(TargetKind kind, const std::type_info& target) {
    const std::string name = readable_type_name(target);
    std::string what;
    switch (kind) {
        case TargetKind::std_function:
            what = "a std::function, which hides the type of what it holds";
            break;
        case TargetKind::member_pointer: what = "a pointer to member"; break;
        case TargetKind::not_callable: what = "neither a function nor a function object"; break;
        default:
            // Closure types demangle as "...::{lambda(int)#1}" (g++) or "...::$_6" (clang).
            what =
                name.find("{lambda(") != std::string::npos || name.find("$_") != std::string::npos
                    ? "a lambda capturing a value that is not trivially copyable (such as a "
                      "std::string or a container), or a pointer, a reference, a std::optional "
                      "or a std::variant, which cannot travel as bytes"
                    : "a function object with members that cannot travel as bytes (not "
                      "trivially copyable, or a pointer, reference or union) and no "
                      "serialize(Ar&)";
    }
    return "the target (type " + name + ", " + what + ")" + kShippable;
}

std::string arg_reason(std::size_t index, const std::type_info& type, const char* why) {
    return "argument " + std::to_string(index) + " (type " + readable_type_name(type) +
           ") cannot be encoded: " + why;
}

std::string not_invocable_reason(const std::type_info& target, std::vector<std::string> args) {
    std::string list;
    for (auto& a : args) list += (list.empty() ? "" : ", ") + a;
    return "the target (type " + readable_type_name(target) +
           ") cannot be called with arguments (" + list + ")";
}

void begin_package(Encoder& e, const std::vector<std::byte>& thunk_identity) {
    e.write_bytes(&call_magic, sizeof call_magic);
    e.write_bytes(thunk_identity.data(), thunk_identity.size());
}

[[gnu::hot]] ThunkFn open_package(Decoder& d) {
    std::uint32_t magic = 0;
    d.read_bytes(&magic, sizeof magic);
    if (magic != call_magic)
        throw DecodeError(
            "multiproc: corrupt call: these bytes are not a shipped call (bad magic)");
    return reinterpret_cast<ThunkFn>(resolve_code_address(d, EntryKind::thunk));
}

[[gnu::hot]] void run_shipped_call(std::span<const std::byte> bytes, std::span<UniqueFd> fds) {
    Decoder d(bytes, fds);
    open_package(d)(d, nullptr);
}

}  // namespace mp::detail
