// libFuzzer harness for mp::loads: the first byte picks the type, the rest is decoded as it.
// mp::DecodeError is the right answer to bad bytes; anything else (a crash, a sanitizer report,
// another exception, an allocation out of proportion to the input) is a bug.
//
// Seed corpus: `loads_fuzz --write-seeds DIR` writes one valid encoding of every type
// (tests/fuzz/corpus/loads/ was made so).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "multiproc/reduction.hpp"

namespace {

struct User {  // member serialize
    int id = 0;
    std::string name;
    std::vector<double> xs;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(id, name, xs);
    }
};

struct Checked {  // save/load with an invariant
    int lo = 0, hi = 0;
    template <class Ar>
    void save(Ar& ar) const {
        ar(lo, hi);
    }
    template <class Ar>
    void load(Ar& ar) {
        ar(lo, hi);
        if (hi < lo) throw mp::DecodeError("Checked: hi < lo");
    }
};

struct Flags {  // a plain struct with bools and padding: a byte map, bools checked
    char c;
    bool on;
    std::int32_t n;
    bool off;
    double d;
};

struct Dense {  // a plain struct without padding: raw bytes
    std::int32_t a, b;
    float f;
    std::uint32_t u;
};

struct Empty {};

enum class Color : std::uint8_t { red, green };

using Nested =
    std::tuple<std::optional<std::string>, std::variant<int, std::string, std::vector<int>>, bool>;

// One entry per type: decode, and the seed encoding.
struct Entry {
    void (*decode)(std::span<const std::byte>);
    std::vector<std::byte> (*seed)();
};

template <class T, auto Make>
Entry make_entry() {
    return {[](std::span<const std::byte> b) { (void)mp::loads<T>(b); },
            [] { return mp::dumps(T(Make())); }};
}

std::exception_ptr an_exception() {
    try {
        throw std::invalid_argument("seed");
    } catch (...) {
        return std::current_exception();
    }
}

const std::vector<Entry>& entries() {
    static const std::vector<Entry> all =
        {
            make_entry<int, [] { return -7; }>(),
            make_entry<double, [] { return 2.5; }>(),
            make_entry<bool, [] { return true; }>(),
            make_entry<long double, [] { return 1.5L; }>(),
            make_entry<Color, [] { return Color::green; }>(),
            make_entry<std::string, [] { return std::string("hello"); }>(),
            make_entry<std::wstring, [] { return std::wstring(L"wide"); }>(),
            make_entry<std::u32string, [] { return std::u32string(U"x"); }>(),
            make_entry<std::vector<int>,
                       [] {
        return std::vector<int>{1, 2, 3};
            }>(),
            make_entry<std::vector<bool>,
                       [] {
        return std::vector<bool>{true, false};
            }>(),
                                    make_entry<std::vector<std::string>,
                                               [] {
        return std::vector<std::string>{"a", "bc"};
                                    }>(),
        make_entry<std::vector<std::vector<std::wstring>>,
                   [] {
        return std::vector<std::vector<std::wstring>>{{L"a"}, {}};
        }>(),
        make_entry<std::list<std::string>, [] { return std::list<std::string>{"l"}; }>(),
        make_entry<std::deque<std::tuple<>>, [] { return std::deque<std::tuple<>>(3); }>(),
        make_entry<std::map<int, std::vector<double>>,
                   [] {
        return std::map<int, std::vector<double>>{{1, {1.0}}, {2, {}}};
        }>(),
        make_entry<std::set<std::string>,
                   [] {
        return std::set<std::string>{"s", "t"};
        }>(),
        make_entry<std::unordered_map<std::string, int>,
                   [] {
        return std::unordered_map<std::string, int>{{"k", 1}};
        }>(),
        make_entry<std::multimap<int, Checked>,
                   [] {
        return std::multimap<int, Checked>{{1, {1, 2}}};
        }>(),
        make_entry<std::tuple<int, std::string, bool>,
                   [] {
        return std::tuple<int, std::string, bool>{1, "t", true};
        }>(),
        make_entry<std::pair<std::string, double>,
                   [] {
        return std::pair<std::string, double>{"p", 1.0};
        }>(),
        make_entry<std::array<std::string, 3>,
                   [] {
        return std::array<std::string, 3>{"a", "b", "c"};
        }>(),
        make_entry<Nested,
                   [] {
        return Nested{"s", std::vector<int>{1, 2}, true};
        }>(),
        make_entry<std::optional<std::string>, [] { return std::optional<std::string>("o"); }>(),
        make_entry<std::optional<int>, [] { return std::optional<int>(4); }>(),
        make_entry<std::variant<std::monostate, int, std::string>,
                   [] { return std::variant<std::monostate, int, std::string>("v"); }>(),
        make_entry<std::variant<int, float>, [] { return std::variant<int, float>(1.5f); }>(),
        make_entry<User,
                   [] {
        return User{3, "u", {1.0, 2.0}};
        }>(),
        make_entry<std::vector<User>,
                   [] {
        return std::vector<User>{{1, "a", {}}, {2, "b", {3.0}}};
        }>(),
        make_entry<Checked,
                   [] {
        return Checked{1, 5};
        }>(),
        make_entry<Flags,
                   [] {
        return Flags{'c', true, 7, false, 1.0};
        }>(),
        make_entry<std::vector<Flags>,
                   [] {
        return std::vector<Flags>{{'a', false, 1, true, 2.0}};
        }>(),
        make_entry<std::vector<Dense>,
                   [] {
        return std::vector<Dense>{{1, 2, 3.0f, 4}};
        }>(),
        make_entry<std::vector<Empty>, [] { return std::vector<Empty>(4); }>(),
        make_entry<std::exception_ptr, [] { return an_exception(); }>(),
        make_entry<std::vector<std::exception_ptr>,
                   [] {
        return std::vector<std::exception_ptr>{an_exception(), nullptr};
        }>(),
        };
    return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto& all = entries();
    const auto bytes = std::as_bytes(std::span(data + 1, size - 1));
    try {
        all[data[0] % all.size()].decode(bytes);
    } catch (const mp::DecodeError&) {
    }
    return 0;
}

// `--write-seeds DIR`: one file a type, the selector byte then a valid encoding.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    if (*argc == 3 && std::strcmp((*argv)[1], "--write-seeds") == 0) {
        const auto& all = entries();
        for (std::size_t i = 0; i < all.size(); ++i) {
            const std::string path = std::string((*argv)[2]) + "/seed-" + std::to_string(i);
            std::FILE* f = std::fopen(path.c_str(), "wb");
            if (!f) return 1;
            const auto sel = static_cast<unsigned char>(i);
            const auto body = all[i].seed();
            std::fwrite(&sel, 1, 1, f);
            std::fwrite(body.data(), 1, body.size(), f);
            std::fclose(f);
        }
        std::exit(0);
    }
    return 0;
}
