#include <gtest/gtest.h>

#include <map>
#include <set>

#include "multiproc/reduction.hpp"

namespace {

struct Point {
    int x = 0, y = 0;
    std::string label;
    template <class Ar>
    void serialize(Ar& ar) { ar(x, y, label); }
    bool operator==(const Point&) const = default;
};

TEST(Reduction, RoundTripsStandardTypes) {
    using V = std::tuple<int, std::string, std::vector<double>, std::map<std::string, std::set<int>>,
                         std::optional<Point>, std::variant<int, std::string>, bool,
                         std::vector<std::string>>;
    V v{7, "seven", {1.5, 2.5}, {{"a", {1, 2}}, {"b", {}}}, Point{1, 2, "p"}, std::string("alt"),
        true, {"x", "", "zz"}};
    auto bytes = mp::dumps(v);
    EXPECT_EQ(mp::loads<V>(bytes), v);
}

TEST(Reduction, TruncatedInputIsDecodeError) {
    auto bytes = mp::dumps(std::vector<std::string>{"hello", "world"});
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_THROW(mp::loads<std::vector<std::string>>(std::span(bytes).first(n)), mp::DecodeError);
}

}  // namespace
