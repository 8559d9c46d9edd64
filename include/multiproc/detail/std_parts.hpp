// The parts of two heavy standard headers that multiproc's headers need, without the rest.
//
// In C++20, <chrono> also brings the calendar, time zones and their stream operators (with
// <sstream> and the locale machinery: about 5,000 preprocessed lines), and <ranges> all of the
// views and adaptors (about 7,000); every user of multiproc would compile them for a few names.
// The headers here only need durations, time points and clocks (mp::Timeout), and the range
// concepts and aliases (input_range, range_value_t, iterator_t, ranges::begin/end). libstdc++
// declares those in <bits/chrono.h> and <bits/ranges_base.h>, which its own <mutex>, <thread>
// and <string> include; with another standard library the standard headers are included.
// A program that uses other parts of <chrono> or <ranges> (std::views::iota, system_clock's
// calendar, ...) includes them itself, as it must anyway.
#pragma once

#include <cstddef>  // defines __GLIBCXX__ with libstdc++

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>) && __has_include(<bits/ranges_base.h>)
#include <bits/chrono.h>
// bits/ranges_base.h needs what <string_view> includes first (and <string_view> includes it).
#include <string_view>
#include <bits/ranges_base.h>
#else
#include <chrono>
#include <ranges>
#endif
