// The codec: round trips of every built-in kind and of user types, and hostile input (truncated,
// corrupt, oversized, random) that must end in mp::DecodeError and nothing worse.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "multiproc/reduction.hpp"

#if defined(__GNUC__) && !defined(__clang__)
// g++ 12 flags malloc/free inside a replaced operator new/delete as a mismatch: it is the
// replacement itself, so the pairing is right by construction.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// The largest single allocation made while `g_track` is on: proves that decoding a hostile count
// never asks for the memory the count announces.
namespace {
std::atomic<bool> g_track{false};
std::atomic<std::size_t> g_largest{0};
void note(std::size_t n) {
    if (!g_track.load(std::memory_order_relaxed)) return;
    std::size_t prev = g_largest.load(std::memory_order_relaxed);
    while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
    }
}
}  // namespace

void* operator new(std::size_t n) {
    note(n);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    note(n);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct Point {
    int x = 0, y = 0;
    std::string label;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(x, y, label);
    }
    bool operator==(const Point&) const = default;
};

// Opts in through a free serialize function, found by argument-dependent lookup.
struct Free {
    std::vector<std::string> words;
    std::optional<double> weight;
    bool operator==(const Free&) const = default;
};
template <class Ar>
void serialize(Ar& ar, Free& f) {
    ar(f.words, f.weight);
}

// Opts in through save/load, and keeps an invariant the bytes must not break.
class Range {
public:
    Range() = default;
    Range(int lo, int hi) : lo_(lo), hi_(hi) {}
    template <class Ar>
    void save(Ar& ar) const {
        ar(lo_, hi_ - lo_);
    }
    template <class Ar>
    void load(Ar& ar) {
        int width = 0;
        ar(lo_, width);
        if (width < 0 || lo_ > std::numeric_limits<int>::max() - width)
            throw mp::DecodeError("Range: bad width");
        hi_ = lo_ + width;
    }
    bool operator==(const Range&) const = default;

private:
    int lo_ = 0, hi_ = 0;
};

struct Pod {
    std::int32_t a;
    double b;
    char c[5];
    bool operator==(const Pod& o) const {
        return a == o.a && b == o.b && std::string_view(c, 5) == std::string_view(o.c, 5);
    }
};

enum class Color : std::uint8_t { red, green, blue };

struct NotSerializable {
    NotSerializable() = default;
    NotSerializable(const NotSerializable&) {}  // not trivially copyable, no serialize
    std::string s;
};

static_assert(!mp::is_shippable_v<int*>);
static_assert(!mp::is_shippable_v<const char*>);
static_assert(!mp::is_shippable_v<std::string_view>);
static_assert(!mp::is_shippable_v<std::span<int>>);
static_assert(!mp::is_shippable_v<NotSerializable>);
static_assert(!mp::is_shippable_v<std::vector<int*>>);
static_assert(!mp::is_shippable_v<std::map<std::string, std::string_view>>);
static_assert(!mp::is_shippable_v<std::optional<NotSerializable>>);
static_assert(!mp::is_shippable_v<std::tuple<int, NotSerializable>>);
static_assert(mp::is_shippable_v<Point>);
static_assert(mp::is_shippable_v<Free>);
static_assert(mp::is_shippable_v<Range>);
static_assert(mp::is_shippable_v<std::map<std::string, std::vector<Point>>>);

template <class T>
void expect_round_trip(const T& v) {
    auto bytes = mp::dumps(v);
    EXPECT_TRUE(mp::loads<T>(bytes) == v) << typeid(T).name();
}

TEST(Reduction, RoundTripsStandardTypes) {
    using V = std::tuple<int, std::string, std::vector<double>,
                         std::map<std::string, std::set<int>>, std::optional<Point>,
                         std::variant<int, std::string>, bool, std::vector<std::string>>;
    V v{7,
        "seven",
        {1.5, 2.5},
        {{"a", {1, 2}}, {"b", {}}},
        Point{1, 2, "p"},
        std::string("alt"),
        true,
        {"x", "", "zz"}};
    auto bytes = mp::dumps(v);
    EXPECT_EQ(mp::loads<V>(bytes), v);
}

TEST(Reduction, EveryBuiltInKindRoundTrips) {
    expect_round_trip(std::int8_t{-8});
    expect_round_trip(std::uint64_t{0xfedcba9876543210u});
    expect_round_trip(3.25);
    expect_round_trip(-1.5f);
    expect_round_trip('c');
    expect_round_trip(true);
    expect_round_trip(false);
    expect_round_trip(Color::blue);
    expect_round_trip(Pod{-3, 2.5, {'a', 'b', 'c', 'd', 'e'}});
    expect_round_trip(std::string());
    expect_round_trip(std::string("with\0nul", 8));
    expect_round_trip(std::u16string(u"wide"));
    expect_round_trip(std::vector<int>{});
    expect_round_trip(std::vector<std::int64_t>{1, -2, 3});
    expect_round_trip(std::vector<bool>{true, false, true});
    expect_round_trip(std::vector<Pod>{{1, 1.0, {}}, {2, 2.0, {'x'}}});
    expect_round_trip(std::list<std::string>{"a", "bb"});
    expect_round_trip(std::deque<int>{4, 5, 6});
    expect_round_trip(std::array<int, 3>{7, 8, 9});
    expect_round_trip(std::array<std::string, 2>{"left", "right"});
    expect_round_trip(std::map<int, std::string>{{1, "one"}, {2, "two"}});
    expect_round_trip(std::multimap<int, int>{{1, 1}, {1, 2}});
    expect_round_trip(std::unordered_map<std::string, double>{{"x", 1.0}, {"y", 2.0}});
    expect_round_trip(std::set<std::string>{"s", "t"});
    expect_round_trip(std::unordered_set<int>{3, 1, 4});
    expect_round_trip(std::pair<std::string, int>{"p", 1});
    expect_round_trip(std::tuple<>{});
    expect_round_trip(std::tuple<int, std::string, bool>{1, "t", true});
    expect_round_trip(std::optional<std::string>{});
    expect_round_trip(std::optional<std::string>{"engaged"});
    expect_round_trip(std::variant<int, std::string, std::vector<int>>{5});
    expect_round_trip(std::variant<int, std::string, std::vector<int>>{std::string("alt")});
    expect_round_trip(std::variant<int, std::string, std::vector<int>>{std::vector<int>{1, 2}});
    expect_round_trip(std::chrono::milliseconds(1500));
    expect_round_trip(std::chrono::duration<double>(0.25));
    expect_round_trip(std::chrono::nanoseconds::max());
}

TEST(Reduction, UserTypesRoundTrip) {
    expect_round_trip(Point{3, 4, "member serialize"});
    expect_round_trip(Free{{"free", "serialize"}, 0.5});
    expect_round_trip(Free{{}, std::nullopt});
    expect_round_trip(Range(-5, 10));
    expect_round_trip(std::vector<Range>{{1, 2}, {3, 30}});
}

TEST(Reduction, NestedContainersRoundTrip) {
    std::map<std::string, std::vector<std::optional<std::pair<Point, std::set<int>>>>> deep{
        {"a", {std::nullopt, std::make_pair(Point{1, 1, "q"}, std::set<int>{1, 2})}},
        {"b", {}},
    };
    expect_round_trip(deep);
    std::vector<std::vector<std::vector<std::string>>> cube{{{"x"}, {}}, {}, {{"y", "z"}}};
    expect_round_trip(cube);
    std::variant<std::monostate, std::map<int, Free>, Range> v =
        std::map<int, Free>{{1, Free{{"n"}, 2.0}}};
    auto back = mp::loads<decltype(v)>(mp::dumps(v));
    EXPECT_EQ(std::get<1>(back).at(1), (Free{{"n"}, 2.0}));
}

TEST(Reduction, CorruptTagsAreDecodeErrors) {
    auto b = mp::dumps(true);
    b[0] = std::byte{2};
    EXPECT_THROW((void)mp::loads<bool>(b), mp::DecodeError);

    // (An optional or variant of trivially copyable types is itself trivially copyable and
    // travels as raw bytes, tag included; these use a non-trivial payload to get the checked form.)
    auto o = mp::dumps(std::optional<std::string>("five"));
    o[0] = std::byte{7};
    EXPECT_THROW((void)mp::loads<std::optional<std::string>>(o), mp::DecodeError);

    using Var = std::variant<int, std::string>;
    auto v = mp::dumps(Var(1));
    v[0] = std::byte{2};  // there is no alternative #2
    EXPECT_THROW((void)mp::loads<Var>(v), mp::DecodeError);
    v[3] = std::byte{0x80};
    EXPECT_THROW((void)mp::loads<Var>(v), mp::DecodeError);

    auto r = mp::dumps(std::make_pair(1, -1));  // a negative width breaks Range's invariant
    EXPECT_THROW((void)mp::loads<Range>(r), mp::DecodeError);
}

TEST(Reduction, TruncatedInputIsDecodeError) {
    auto bytes = mp::dumps(std::vector<std::string>{"hello", "world"});
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_THROW(mp::loads<std::vector<std::string>>(std::span(bytes).first(n)),
                     mp::DecodeError);
}

TEST(Reduction, EveryTruncationOfAComplexValueIsDecodeError) {
    using T =
        std::tuple<std::map<std::string, std::vector<Point>>, std::optional<Free>,
                   std::variant<int, Range, std::string>, std::vector<bool>, std::array<double, 2>>;
    T v{{{"k", {Point{1, 2, "a"}, Point{3, 4, ""}}}, {"", {}}},
        Free{{"w"}, 1.0},
        std::string("variant"),
        {true, false},
        {0.5, 1.5}};
    auto bytes = mp::dumps(v);
    ASSERT_EQ(mp::loads<T>(bytes), v);
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_THROW((void)mp::loads<T>(std::span(bytes).first(n)), mp::DecodeError)
            << "prefix " << n;
}

TEST(Reduction, TrailingBytesAreDecodeError) {
    auto bytes = mp::dumps(std::string("abc"));
    bytes.push_back(std::byte{0});
    EXPECT_THROW((void)mp::loads<std::string>(bytes), mp::DecodeError);
    auto two = mp::dumps(std::make_pair(1, 2));
    EXPECT_THROW((void)mp::loads<int>(two), mp::DecodeError);
}

TEST(Reduction, HugeCountWithFewBytesIsDecodeErrorWithoutAllocating) {
    auto hostile = [](std::uint64_t count, std::size_t extra) {
        std::vector<std::byte> b(sizeof count + extra, std::byte{1});
        std::memcpy(b.data(), &count, sizeof count);
        return b;
    };
    const std::uint64_t counts[] = {std::uint64_t{1} << 40, std::uint64_t{1} << 62,
                                    ~std::uint64_t{0}, 1000};
    g_largest = 0;
    g_track = true;
    for (std::uint64_t count : counts) {
        auto b = hostile(count, 16);
        EXPECT_THROW((void)mp::loads<std::string>(b), mp::DecodeError);
        EXPECT_THROW((void)mp::loads<std::vector<int>>(b), mp::DecodeError);
        EXPECT_THROW((void)mp::loads<std::vector<std::string>>(b), mp::DecodeError);
        EXPECT_THROW((void)mp::loads<std::list<Point>>(b), mp::DecodeError);
        EXPECT_THROW((void)(mp::loads<std::map<int, int>>(b)), mp::DecodeError);
    }
    g_track = false;
    // Error messages and the odd small vector, nothing near what the counts announced.
    EXPECT_LT(g_largest.load(), std::size_t{64} << 10);
}

// Random bytes decoded as a type may fail only with mp::DecodeError: no crash, no other error,
// no sanitizer report (this binary runs under ASan/UBSan in CI).
template <class T>
void decode_hostile(std::span<const std::byte> bytes, std::size_t& ok, std::size_t& rejected) {
    try {
        (void)mp::loads<T>(bytes);
        ++ok;
    } catch (const mp::DecodeError&) {
        ++rejected;
    }
}

TEST(Reduction, RandomInputOnlyEverThrowsDecodeError) {
    using Nested = std::tuple<std::optional<std::string>,
                              std::variant<int, std::string, std::vector<int>>, bool>;
    std::mt19937_64 rng(20240601);
    std::vector<std::vector<std::byte>> seeds{
        mp::dumps(std::vector<std::string>{"a", "bc"}),
        mp::dumps(std::map<int, std::vector<double>>{{1, {1.0}}, {2, {}}}),
        mp::dumps(Nested{"s", std::vector<int>{1, 2}, true}),
        mp::dumps(Point{1, 2, "pt"}),
        mp::dumps(Free{{"x"}, 2.0}),
    };
    std::size_t ok = 0, rejected = 0;
    std::vector<std::byte> input;
    for (int iter = 0; iter < 20000; ++iter) {
        if (iter % 2 == 0) {  // pure noise
            input.resize(rng() % 48);
            for (auto& b : input) b = static_cast<std::byte>(rng());
        } else {  // a valid encoding with a few bytes flipped, cut or grown
            input = seeds[rng() % seeds.size()];
            for (int k = 0, flips = 1 + static_cast<int>(rng() % 4); k < flips && !input.empty();
                 ++k)
                input[rng() % input.size()] = static_cast<std::byte>(rng());
            if (rng() % 4 == 0) input.resize(rng() % (input.size() + 8));
        }
        decode_hostile<std::vector<std::string>>(input, ok, rejected);
        decode_hostile<std::map<int, std::vector<double>>>(input, ok, rejected);
        decode_hostile<Nested>(input, ok, rejected);
        decode_hostile<Point>(input, ok, rejected);
        decode_hostile<Free>(input, ok, rejected);
        decode_hostile<Range>(input, ok, rejected);
        decode_hostile<std::set<std::string>>(input, ok, rejected);
        decode_hostile<std::vector<bool>>(input, ok, rejected);
    }
    EXPECT_GT(rejected, 0u);
    EXPECT_GT(ok, 0u);  // the mutations also produce valid values: the loop reaches deep paths
}

TEST(Reduction, RandomInputAsAnExceptionOnlyEverThrowsDecodeError) {
    std::mt19937_64 rng(7);
    std::vector<std::byte> seed;
    try {
        throw std::invalid_argument("seed");
    } catch (...) {
        seed = mp::dumps(std::current_exception());
    }
    for (int iter = 0; iter < 5000; ++iter) {
        std::vector<std::byte> input = seed;
        input[rng() % input.size()] = static_cast<std::byte>(rng());
        if (rng() % 3 == 0) input.resize(rng() % input.size());
        try {
            (void)mp::loads<std::exception_ptr>(input);  // any decoded exception is fine
        } catch (const mp::DecodeError&) {
        }
    }
}

// ---- allocation bounded by the bytes received (DESIGN.md 11) --------------------------------

// A type of 128 KiB whose encoding is small: counts of it cannot be checked against the bytes.
struct Big {
    std::array<std::string, 4096> words;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(words);
    }
};
struct Hollow {  // 128 KiB in memory, nothing on the wire
    std::array<char, 128 << 10> scratch{};
    template <class Ar>
    void serialize(Ar&) {}
};

std::vector<std::byte> count_then(std::uint64_t count, std::size_t body) {
    std::vector<std::byte> b(sizeof count + body, std::byte{0});
    std::memcpy(b.data(), &count, sizeof count);
    return b;
}

template <class T>
std::size_t largest_allocation_decoding(std::span<const std::byte> bytes) {
    g_largest = 0;
    g_track = true;
    try {
        (void)mp::loads<T>(bytes);
    } catch (const mp::DecodeError&) {
    }
    g_track = false;
    return g_largest.load();
}

TEST(Reduction, ACountOfLargeElementsDoesNotAllocateWhatItAnnounces) {
    // 1 MiB claiming 2^20 elements: before, reserve(2^20 * sizeof) (128 GiB: std::bad_alloc, or
    // 32 MiB of strings for a 1 MiB message).
    const auto hostile = count_then(std::uint64_t{1} << 20, std::size_t{1} << 20);
    EXPECT_LE(largest_allocation_decoding<std::vector<Big>>(hostile), std::size_t{4} << 20);
    EXPECT_LE(largest_allocation_decoding<std::vector<Hollow>>(hostile), std::size_t{4} << 20);
    EXPECT_LE(largest_allocation_decoding<std::vector<std::string>>(hostile), std::size_t{4} << 20);
    EXPECT_LE(largest_allocation_decoding<std::deque<Hollow>>(hostile), std::size_t{4} << 20);
    using Sparse = std::vector<std::optional<std::array<double, 64>>>;
    EXPECT_LE(largest_allocation_decoding<Sparse>(hostile), std::size_t{4} << 20);
    EXPECT_THROW((void)mp::loads<std::vector<Hollow>>(hostile), mp::DecodeError);
    EXPECT_THROW((void)mp::loads<std::vector<Big>>(hostile), mp::DecodeError);
}

TEST(Reduction, ElementsThatEncodeToNothingAreCountedAgainstABudget) {
    // Each inner vector of empty values costs 8 bytes of input but announces 2^40 elements: the
    // outer vector must not make 2^40 elements per 8 bytes (nor loop forever).
    struct Nothing {
        bool operator==(const Nothing&) const = default;
    };
    std::vector<std::byte> b = count_then(1024, 1024 * 8);
    for (std::size_t i = 0; i < 1024; ++i) {
        const std::uint64_t n = std::uint64_t{1} << 40;
        std::memcpy(b.data() + 8 + i * 8, &n, 8);
    }
    EXPECT_THROW((void)mp::loads<std::vector<std::vector<Nothing>>>(b), mp::DecodeError);
    EXPECT_THROW((void)mp::loads<std::list<std::tuple<>>>(count_then(~std::uint64_t{0}, 0)),
                 mp::DecodeError);
    EXPECT_THROW((void)mp::loads<std::vector<Hollow>>(count_then(std::uint64_t{1} << 20, 0)),
                 mp::DecodeError);
    // Legitimate values of such types still decode.
    expect_round_trip(std::vector<Nothing>(1000));
    expect_round_trip(std::vector<std::vector<Nothing>>(10, std::vector<Nothing>(10)));
    EXPECT_EQ(mp::loads<std::vector<Hollow>>(mp::dumps(std::vector<Hollow>(3))).size(), 3u);
}

// The largest allocation decoding `bytes` as T makes is at most 4 times their size.
template <class T>
void expect_bounded(std::span<const std::byte> bytes) {
    EXPECT_LE(largest_allocation_decoding<T>(bytes), 4 * bytes.size()) << typeid(T).name();
}

TEST(Reduction, NestedAndNodeContainersOfHostileCountsStayBounded) {
    const auto hostile = count_then(std::uint64_t{1} << 20, std::size_t{1} << 20);
    expect_bounded<std::map<std::string, Big>>(hostile);
    expect_bounded<std::set<std::wstring>>(hostile);
    expect_bounded<std::list<std::u32string>>(hostile);
    expect_bounded<std::vector<std::vector<std::wstring>>>(hostile);
    expect_bounded<std::unordered_map<int, std::array<std::string, 64>>>(hostile);
    expect_bounded<std::vector<std::exception_ptr>>(hostile);
    expect_bounded<std::vector<std::variant<std::monostate, std::array<std::string, 512>>>>(
        hostile);
    expect_bounded<std::deque<std::string>>(hostile);
}

// ---- plain structs: checked members, no padding on the wire (items 7 and 8) -----------------

struct WithVariant {
    int id;
    std::variant<int, float> v;
};
struct WithOptional {
    int id;
    std::optional<double> o;
};
struct WithPointer {
    int* p;
};
struct Flags {
    std::int32_t n;
    bool on;
    bool off;
    char tag[2];
    bool operator==(const Flags&) const = default;
};
struct Padded {  // 3 bytes of padding after c, 4 after i
    char c;
    std::int32_t i;
    std::int64_t l;
    std::int32_t tail;
    bool operator==(const Padded&) const = default;
};
struct Empty {
    bool operator==(const Empty&) const = default;
};
struct Dense {
    std::int32_t a, b;
    float f;
    Color c[4];
    bool operator==(const Dense&) const = default;
};

// Before: plain structs holding a variant or an optional were copied as raw bytes, so a corrupt
// index reached std::visit.
static_assert(!mp::is_shippable_v<WithVariant>);
static_assert(!mp::is_shippable_v<WithOptional>);
static_assert(!mp::is_shippable_v<WithPointer>);
static_assert(!mp::is_shippable_v<std::vector<WithVariant>>);
static_assert(mp::is_shippable_v<Flags> && mp::is_shippable_v<Padded> && mp::is_shippable_v<Empty>);

TEST(Reduction, ABoolInsideAPlainStructIsChecked) {
    const Flags f{7, true, false, {'x', 'y'}};
    expect_round_trip(f);
    expect_round_trip(std::vector<Flags>{f, Flags{-1, false, true, {}}});
    const auto b = mp::dumps(f);
    ASSERT_EQ(b.size(), 8u);
    const auto vb = mp::dumps(std::vector<Flags>{f});
    for (std::size_t i : {4u, 5u}) {  // on, off
        auto bad = b;
        bad[i] = std::byte{2};
        EXPECT_THROW((void)mp::loads<Flags>(bad), mp::DecodeError) << "byte " << i;
        auto vbad = vb;
        vbad[8 + i] = std::byte{200};
        EXPECT_THROW((void)mp::loads<std::vector<Flags>>(vbad), mp::DecodeError) << "byte " << i;
    }
}

TEST(Reduction, ALambdaCapturingABoolIsChecked) {
    bool flag = true;
    int k = 3;
    auto f = [flag, k](int x) { return flag ? x * k : x; };
    auto b = mp::dumps(f);
    ASSERT_EQ(b.size(), 5u);  // 1 + 4 value bytes, not the 3 bytes of padding
    EXPECT_EQ(mp::loads<decltype(f)>(b)(2), 6);
    for (auto& x : b)
        if (x == std::byte{1}) x = std::byte{200};
    EXPECT_THROW((void)mp::loads<decltype(f)>(b), mp::DecodeError);
}

// Fills the storage with 0xAA before constructing T in it: padding keeps the fill.
template <class T, class... A>
std::vector<std::byte> dumps_over_fill(A&&... a) {
    alignas(T) std::array<unsigned char, sizeof(T)> storage;
    std::memset(storage.data(), 0xAA, storage.size());
    T* p = ::new (storage.data()) T{std::forward<A>(a)...};
    return mp::dumps(*p);
}

TEST(Reduction, PaddingAndEmptyTypesPutNoBytesOnTheWire) {
    // Before: the padded struct was sent with its 7 padding bytes as they were (0xAA here), and
    // an empty type as one uninitialised byte.
    const auto b = dumps_over_fill<Padded>(char{1}, 2, std::int64_t{3}, 4);
    EXPECT_EQ(b.size(), 1u + 4 + 8 + 4);
    EXPECT_EQ(std::count(b.begin(), b.end(), std::byte{0xAA}), 0);
    EXPECT_EQ(b, dumps_over_fill<Padded>(char{1}, 2, std::int64_t{3}, 4));
    EXPECT_EQ(mp::loads<Padded>(b), (Padded{1, 2, 3, 4}));
    EXPECT_TRUE(dumps_over_fill<Empty>().empty());
    EXPECT_TRUE(mp::dumps(std::tuple<Empty, std::tuple<>>{}).empty());
    EXPECT_EQ(mp::dumps(std::vector<Empty>(5)).size(), 8u);
    expect_round_trip(Empty{});
    int k = 1;
    double d = 2;
    auto lambda = [k, d] { return k + d; };  // 4 bytes of padding between k and d
    EXPECT_EQ(mp::dumps(lambda).size(), 12u);
    EXPECT_EQ(mp::loads<decltype(lambda)>(mp::dumps(lambda))(), 3.0);
    const long double ld = 1.25L;
    EXPECT_EQ(mp::dumps(ld).size(), mp::detail::long_double_bytes);
    expect_round_trip(ld);
}

TEST(Reduction, StructsWithoutPaddingStayOneMemcpy) {
    static_assert(mp::detail::kind_of<Dense>() == mp::detail::Kind::raw);
    static_assert(mp::detail::kind_of<std::vector<Dense>>() == mp::detail::Kind::contiguous_raw);
    static_assert(mp::detail::kind_of<std::vector<double>>() == mp::detail::Kind::contiguous_raw);
    static_assert(mp::detail::kind_of<std::vector<std::array<std::int32_t, 3>>>() ==
                  mp::detail::Kind::contiguous_raw);
    // Enums: any value of the underlying type decodes.
    auto b = mp::dumps(Color::red);
    b[0] = std::byte{77};
    EXPECT_EQ(static_cast<int>(mp::loads<Color>(b)), 77);
    expect_round_trip(std::vector<Dense>{
        {1, 2, 0.5f, {Color::green, Color::red, Color::blue, Color::red}}});
}

}  // namespace
