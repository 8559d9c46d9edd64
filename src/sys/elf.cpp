#include "sys/elf.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "sys/syscall.hpp"

namespace mp::sys {

namespace {

using Ehdr = ElfW(Ehdr);
using Phdr = ElfW(Phdr);
using Shdr = ElfW(Shdr);
using Sym = ElfW(Sym);

#if __SIZEOF_POINTER__ == 8
constexpr unsigned char kClass = ELFCLASS64;
#else
constexpr unsigned char kClass = ELFCLASS32;
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kData = ELFDATA2LSB;
#else
constexpr unsigned char kData = ELFDATA2MSB;
#endif

// A real build id note is 36 bytes; a note segment larger than this is not worth reading.
constexpr std::uint64_t kMaxNotes = 64 * 1024;

constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

[[noreturn]] void bad_file(const std::string& path, const char* why) {
    throw ProcessError("multiproc: cannot read module " + path + ": " + why);
}

unsigned char sym_type(const Sym& s) { return ELF64_ST_TYPE(s.st_info); }

}  // namespace

std::string build_id_in_notes(std::span<const unsigned char> notes, std::size_t align) {
    const unsigned char* p = notes.data();
    std::size_t left = notes.size();
    while (left >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        std::memcpy(&nh, p, sizeof nh);
        const std::size_t name_off = sizeof nh;
        if (nh.n_namesz > left || nh.n_descsz > left) break;
        const std::size_t desc_off = name_off + align_up(nh.n_namesz, align);
        if (desc_off > left || nh.n_descsz > left - desc_off) break;
        const std::size_t next = desc_off + align_up(nh.n_descsz, align);
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            std::memcmp(p + name_off, "GNU", 4) == 0 && nh.n_descsz > 0 && nh.n_descsz <= 255)
            return std::string(reinterpret_cast<const char*>(p + desc_off), nh.n_descsz);
        if (next >= left) break;
        p += next;
        left -= next;
    }
    return {};
}

ElfFile::ElfFile(const std::string& path) : path_(path) {
    // O_NONBLOCK: opening a FIFO someone named in an identity must not wait for a writer.
    fd_.reset(retry_eintr([&] {
        return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    }));
    if (!fd_) bad_file(path, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode)) bad_file(path, "not a regular file");
    size_ = static_cast<std::uint64_t>(st.st_size);
    Ehdr eh;
    if (size_ < sizeof eh) bad_file(path, "not an ELF file");
    read_at(&eh, sizeof eh, 0);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != kClass ||
        eh.e_ident[EI_DATA] != kData)
        bad_file(path, "not an ELF file of this machine");
    if (eh.e_phnum != 0 && (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == PN_XNUM))
        bad_file(path, "malformed program headers");
    phoff_ = eh.e_phoff;
    phnum_ = eh.e_phnum;
    // No sections (or more than e_shnum can count) reads as "no symbol tables", not as an error.
    if (eh.e_shentsize == sizeof(Shdr)) {
        shoff_ = eh.e_shoff;
        shnum_ = eh.e_shnum;
    }
}

void ElfFile::read_at(void* buf, std::size_t n, std::uint64_t off) const {
    if (off > size_ || n > size_ - off) bad_file(path_, "an offset or size points past its end");
    auto* b = static_cast<unsigned char*>(buf);
    while (n > 0) {
        const ssize_t r =
            retry_eintr([&] { return ::pread(fd_.get(), b, n, static_cast<off_t>(off)); });
        if (r <= 0) bad_file(path_, r < 0 ? std::strerror(errno) : "truncated while read");
        b += r;
        off += static_cast<std::uint64_t>(r);
        n -= static_cast<std::size_t>(r);
    }
}

template <class T>
std::vector<T> ElfFile::read_array(std::uint64_t off, std::uint64_t count) const {
    if (off > size_ || count > (size_ - off) / sizeof(T))
        bad_file(path_, "a table points past its end");
    std::vector<T> v(static_cast<std::size_t>(count));
    read_at(v.data(), v.size() * sizeof(T), off);
    return v;
}

std::string ElfFile::build_id() const {
    const auto phdrs = read_array<Phdr>(phoff_, phnum_);
    for (const Phdr& ph : phdrs) {
        if (ph.p_type != PT_NOTE || ph.p_filesz == 0 || ph.p_filesz > kMaxNotes) continue;
        const auto notes = read_array<unsigned char>(ph.p_offset, ph.p_filesz);
        std::string id = build_id_in_notes(notes, ph.p_align == 8 ? 8 : 4);
        if (!id.empty()) return id;
    }
    return {};
}

ElfFunctions ElfFile::functions(std::span<const std::string_view> prefixes) const {
    ElfFunctions out;
    const auto shdrs = read_array<Shdr>(shoff_, shnum_);
    // .symtab holds every symbol .dynsym holds (the linker writes both from one table), so the
    // second is read only when strip removed the first: half the bytes on the spawn child's path.
    out.has_symtab = std::any_of(shdrs.begin(), shdrs.end(),
                                 [](const Shdr& sh) { return sh.sh_type == SHT_SYMTAB; });
    const unsigned wanted = out.has_symtab ? SHT_SYMTAB : SHT_DYNSYM;
    for (const Shdr& sh : shdrs) {
        if (sh.sh_type != wanted) continue;
        if (sh.sh_entsize != sizeof(Sym) || sh.sh_link >= shdrs.size() ||
            shdrs[sh.sh_link].sh_type != SHT_STRTAB)
            bad_file(path_, "malformed symbol table");
        const auto syms = read_array<Sym>(sh.sh_offset, sh.sh_size / sizeof(Sym));
        const Shdr& strh = shdrs[sh.sh_link];
        const auto names = read_array<char>(strh.sh_offset, strh.sh_size);
        out.all.reserve(out.all.size() + syms.size());
        for (const Sym& s : syms) {
            if (sym_type(s) != STT_FUNC || s.st_shndx == SHN_UNDEF || s.st_value == 0 ||
                s.st_name >= names.size())
                continue;
            const char* name = names.data() + s.st_name;
            const std::string_view n(name, ::strnlen(name, names.size() - s.st_name));
            // A part or clone the compiler made ("f.cold", "f.isra.0") is no entry point.
            if (n.find('.') != std::string_view::npos) continue;
            out.all.push_back(s.st_value);
            for (std::string_view p : prefixes)
                if (n.size() >= p.size() && n[0] == p[0] && n.compare(0, p.size(), p) == 0) {
                    out.prefixed.push_back(s.st_value);
                    break;
                }
        }
    }
    for (auto* v : {&out.all, &out.prefixed}) {
        std::sort(v->begin(), v->end());
        v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    return out;
}

}  // namespace mp::sys
