// The remote stack trace: a recorded throw carries its stack through the exception transport.
#include <gtest/gtest.h>

#include "exception_trace.hpp"
#include "multiproc/reduction.hpp"

// Outside the anonymous namespace, so that the symbol is exported (-rdynamic) and named.
namespace trace_test {
struct CustomError : std::exception {
    const char* what() const noexcept override { return "custom failure"; }
};
[[gnu::noinline]] void throw_custom_from_here() { throw CustomError(); }
}  // namespace trace_test

namespace {
using trace_test::CustomError;
using trace_test::throw_custom_from_here;


std::exception_ptr round_trip(std::exception_ptr ex) {
    return mp::loads<std::exception_ptr>(mp::dumps(ex));
}

TEST(ExceptionTrace, RecordedThrowCarriesItsStack) {
    mp::detail::record_throw_traces(true);
    std::exception_ptr ex;
    try {
        throw_custom_from_here();
    } catch (...) {
        ex = std::current_exception();
    }
    auto back = round_trip(ex);
    mp::detail::record_throw_traces(false);
    try {
        std::rethrow_exception(back);
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("CustomError"), std::string::npos) << e.type_name();
        EXPECT_EQ(e.remote_what(), "custom failure");
        EXPECT_NE(e.traceback().find("throw_custom_from_here"), std::string::npos) << e.traceback();
    }
}

TEST(ExceptionTrace, StandardTypesComeBackAsThemselves) {
    try {
        throw std::invalid_argument("bad argument");
    } catch (...) {
        auto back = round_trip(std::current_exception());
        EXPECT_THROW(
            {
                try {
                    std::rethrow_exception(back);
                } catch (const std::invalid_argument& e) {
                    EXPECT_STREQ(e.what(), "bad argument");
                    throw;
                }
            },
            std::invalid_argument);
    }
}

TEST(ExceptionTrace, NoRecordingNoTrace) {
    mp::detail::record_throw_traces(true);
    try {
        throw_custom_from_here();
    } catch (...) {
    }
    mp::detail::record_throw_traces(false);
    try {
        throw CustomError();
    } catch (...) {
        auto back = round_trip(std::current_exception());
        try {
            std::rethrow_exception(back);
        } catch (const mp::RemoteError& e) {
            EXPECT_EQ(e.traceback(), "");  // not a stale trace of an earlier recorded throw
        }
    }
}

}  // namespace

namespace {

TEST(ExceptionTransport, SystemErrorKeepsCodeAndWhat) {
    const std::system_error original(ENOENT, std::system_category(), "open /nope");
    try {
        throw original;
    } catch (...) {
        auto back = round_trip(std::current_exception());
        try {
            std::rethrow_exception(back);
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ENOENT);
            EXPECT_STREQ(e.what(), original.what());
        }
    }
}

TEST(Reduction, TagsOfTriviallyCopyableOptionalsAndVariantsAreChecked) {
    static_assert(std::is_trivially_copyable_v<std::optional<int>>);
    auto bytes = mp::dumps(std::optional<int>(5));
    bytes[0] = std::byte{7};  // the engaged flag
    EXPECT_THROW(mp::loads<std::optional<int>>(bytes), mp::DecodeError);
    auto vbytes = mp::dumps(std::variant<int, float>(1.5f));
    vbytes[0] = std::byte{9};  // the index
    EXPECT_THROW((mp::loads<std::variant<int, float>>(vbytes)), mp::DecodeError);
    auto pbytes = mp::dumps(std::pair<int, bool>(1, true));
    pbytes.back() = std::byte{2};
    EXPECT_THROW((mp::loads<std::pair<int, bool>>(pbytes)), mp::DecodeError);
    // Tuple-likes of plain numbers still travel as raw bytes, one memcpy for a whole vector.
    std::vector<std::array<double, 2>> v{{1, 1.5}, {2, 2.5}};
    EXPECT_EQ(mp::dumps(v).size(), 8 + v.size() * sizeof(v[0]));
    EXPECT_EQ((mp::loads<std::vector<std::array<double, 2>>>(mp::dumps(v))), v);
}

}  // namespace
