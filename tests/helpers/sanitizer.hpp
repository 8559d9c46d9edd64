// Whether this test binary is built with AddressSanitizer (g++ defines __SANITIZE_ADDRESS__,
// clang answers __has_feature), for the tests that size their work or their expectations by it.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define MP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_TEST_ASAN 1
#endif
#endif

namespace mp::test {

#ifdef MP_TEST_ASAN
inline constexpr bool asan = true;
#else
inline constexpr bool asan = false;
#endif

}  // namespace mp::test
