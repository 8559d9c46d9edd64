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
