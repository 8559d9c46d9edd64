// ELF files read from disk, every offset and size checked against the file: a received function
// identity names the file, so the file is input too (DESIGN.md 11). Two questions are answered,
// each without loading the file: its GNU build id (from the PT_NOTE program headers), and where
// its functions start (from .symtab, or from .dynsym when the file was stripped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "multiproc/detail/fd.hpp"

namespace mp::sys {

/// The NT_GNU_BUILD_ID descriptor in a block of ELF notes (empty when there is none).
[[nodiscard]] std::string build_id_in_notes(std::span<const unsigned char> notes,
                                            std::size_t align);

/// Where the functions of an ELF file start, as link-time addresses (sorted, unique).
struct ElfFunctions {
    std::vector<std::uint64_t> all;       ///< every defined, named STT_FUNC symbol
    std::vector<std::uint64_t> prefixed;  ///< those whose name starts with one of the prefixes
    bool has_symtab = false;              ///< false: stripped, only .dynsym was read
};

/// An ELF file of this machine's class and byte order, opened read-only for the questions above.
class ElfFile {
public:
    /// Opens path; throws mp::ProcessError when it is not a readable regular ELF file of this
    /// machine (never blocks: a FIFO is refused, not opened for reading).
    explicit ElfFile(const std::string& path);

    /// The GNU build id, read from the PT_NOTE segments (empty when the file has none).
    [[nodiscard]] std::string build_id() const;
    /// The start of every function, and of those whose symbol name starts with one of
    /// `prefixes`; compiler-made parts and clones ("f.cold", "f.isra.0") are left out.
    [[nodiscard]] ElfFunctions functions(std::span<const std::string_view> prefixes) const;

private:
    void read_at(void* buf, std::size_t n, std::uint64_t off) const;
    template <class T>
    std::vector<T> read_array(std::uint64_t off, std::uint64_t count) const;

    std::string path_;
    detail::UniqueFd fd_;
    std::uint64_t size_ = 0;
    std::uint64_t phoff_ = 0, shoff_ = 0;
    unsigned phnum_ = 0, shnum_ = 0;
};

}  // namespace mp::sys
