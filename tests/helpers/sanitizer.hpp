// Whether this test binary is built with AddressSanitizer or ThreadSanitizer (g++ defines
// __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang answers __has_feature), for the tests that
// size their work or their expectations by it.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define MP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_TEST_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define MP_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MP_TEST_TSAN 1
#endif
#endif

namespace mp::test {

#ifdef MP_TEST_ASAN
inline constexpr bool asan = true;
#else
inline constexpr bool asan = false;
#endif

#ifdef MP_TEST_TSAN
inline constexpr bool tsan = true;
#else
inline constexpr bool tsan = false;
#endif

}  // namespace mp::test
