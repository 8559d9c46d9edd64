// The parts of heavy standard headers that multiproc's headers need, without the rest.
//
// In C++20, <chrono> also brings the calendar, time zones and their stream operators (with
// <sstream> and the locale machinery: about 5,000 preprocessed lines), and <ranges> all of the
// views and adaptors (about 7,000); every user of multiproc would compile them for a few names.
// The headers here only need durations, time points and clocks (mp::Timeout), and the range
// concepts and aliases (input_range, range_value_t, iterator_t, ranges::begin/end). libstdc++
// declares those in <bits/chrono.h> and <bits/ranges_base.h>, which its own <mutex>, <thread>
// and <string> include; with another standard library the standard headers are included.
// <functional> (about 13,000 lines in C++20: its searchers bring <unordered_map> and the
// algorithms) is needed for std::function, std::invoke and std::reference_wrapper, which
// libstdc++ declares in <bits/std_function.h>, <bits/invoke.h> and <bits/refwrap.h>. <iterator>
// brings the stream iterators (<streambuf>, the locale classes) besides the iterator primitives
// the codec uses, which <bits/stl_iterator.h> and <bits/stl_iterator_base_funcs.h> hold.
// std::invoke itself is defined in <functional>: mp::detail::invoke below is it (libstdc++'s
// std::__invoke, which std::invoke calls, under libstdc++).
// A program that uses other parts of <chrono>, <ranges>, <functional> or <iterator>
// (std::views::iota, system_clock's calendar, std::bind, std::hash, std::ostream_iterator, ...)
// includes them itself, as it must anyway.
#pragma once

#include <cstddef>  // defines __GLIBCXX__ with libstdc++
#include <type_traits>
#include <utility>

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>) && __has_include(<bits/ranges_base.h>)
#include <bits/chrono.h>
// bits/ranges_base.h needs what <string_view> includes first (and <string_view> includes it).
#include <string_view>
#include <bits/ranges_base.h>
#else
#include <chrono>
#include <ranges>
#endif

#if defined(__GLIBCXX__) && __has_include(<bits/std_function.h>) && __has_include(<bits/invoke.h>) && \
    __has_include(<bits/refwrap.h>) && __has_include(<bits/stl_iterator.h>)
#include <bits/stl_function.h>
#include <bits/invoke.h>
#include <bits/refwrap.h>
#include <bits/std_function.h>
#include <bits/stl_iterator_base_types.h>
#include <bits/stl_iterator_base_funcs.h>
#include <bits/stl_iterator.h>
#define MULTIPROC_DETAIL_INVOKE std::__invoke
#else
#include <functional>
#include <iterator>
#define MULTIPROC_DETAIL_INVOKE std::invoke
#endif

namespace mp::detail {

/// std::invoke(f, args...), without <functional>.
template <class F, class... Args>
constexpr decltype(auto) invoke(F&& f, Args&&... args) noexcept(std::is_nothrow_invocable_v<F, Args...>) {
    return MULTIPROC_DETAIL_INVOKE(std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace mp::detail

#undef MULTIPROC_DETAIL_INVOKE
