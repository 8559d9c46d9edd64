// The codec: round trips of every built-in kind and of user types, and hostile input (truncated,
// corrupt, oversized, random) that must end in mp::DecodeError and nothing worse.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <new>
#include <random>
#include <set>
#include <string_view>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>

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
    void serialize(Ar& ar) { ar(x, y, label); }
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
    void save(Ar& ar) const { ar(lo_, hi_ - lo_); }
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
    using V = std::tuple<int, std::string, std::vector<double>, std::map<std::string, std::set<int>>,
                         std::optional<Point>, std::variant<int, std::string>, bool,
                         std::vector<std::string>>;
    V v{7, "seven", {1.5, 2.5}, {{"a", {1, 2}}, {"b", {}}}, Point{1, 2, "p"}, std::string("alt"),
        true, {"x", "", "zz"}};
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
    std::variant<std::monostate, std::map<int, Free>, Range> v = std::map<int, Free>{{1, Free{{"n"}, 2.0}}};
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
        EXPECT_THROW(mp::loads<std::vector<std::string>>(std::span(bytes).first(n)), mp::DecodeError);
}

TEST(Reduction, EveryTruncationOfAComplexValueIsDecodeError) {
    using T = std::tuple<std::map<std::string, std::vector<Point>>, std::optional<Free>,
                         std::variant<int, Range, std::string>, std::vector<bool>, std::array<double, 2>>;
    T v{{{"k", {Point{1, 2, "a"}, Point{3, 4, ""}}}, {"", {}}},
        Free{{"w"}, 1.0},
        std::string("variant"),
        {true, false},
        {0.5, 1.5}};
    auto bytes = mp::dumps(v);
    ASSERT_EQ(mp::loads<T>(bytes), v);
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_THROW((void)mp::loads<T>(std::span(bytes).first(n)), mp::DecodeError) << "prefix " << n;
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
    const std::uint64_t counts[] = {std::uint64_t{1} << 40, std::uint64_t{1} << 62, ~std::uint64_t{0}, 1000};
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
    using Nested = std::tuple<std::optional<std::string>, std::variant<int, std::string, std::vector<int>>, bool>;
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
            for (int k = 0, flips = 1 + static_cast<int>(rng() % 4); k < flips && !input.empty(); ++k)
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

}  // namespace
