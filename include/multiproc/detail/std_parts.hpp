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
// std::invoke itself is defined in <functional> only: mp::detail::invoke below does its job
// for what multiproc calls (functions, callable objects, pointers to members).
// A program that uses other parts of <chrono>, <ranges>, <functional> or <iterator>
// (std::views::iota, system_clock's calendar, std::bind, std::hash, std::ostream_iterator, ...)
// includes them itself, as it must anyway.
#pragma once

#include <cstddef>  // defines __GLIBCXX__ with libstdc++
#include <type_traits>
#include <utility>

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>) && __has_include(<bits/ranges_base.h>)
// The order of these includes matters.
// clang-format off
#include <bits/chrono.h>
// bits/ranges_base.h needs what <string_view> includes first (and <string_view> includes it).
#include <string_view>
#include <bits/ranges_base.h>
// clang-format on
#else
#include <chrono>
#include <ranges>
#endif

#if defined(__GLIBCXX__) && __has_include(<bits/std_function.h>) && __has_include(<bits/refwrap.h>) && \
    __has_include(<bits/stl_iterator.h>)
// The order of these includes matters.
// clang-format off
#include <bits/stl_function.h>
#include <bits/refwrap.h>
#include <bits/std_function.h>
#include <bits/stl_iterator_base_types.h>
#include <bits/stl_iterator_base_funcs.h>
#include <bits/stl_iterator.h>
// clang-format on
#else
#include <functional>
#include <iterator>
#endif

namespace mp::detail {

template <class M>
struct member_class;
template <class T, class C>
struct member_class<T C::*> {
    using type = C;
};

/// std::invoke(f, args...) without <functional> (which alone defines it): a pointer to member
/// applied to an object, a reference or a pointer to one, or else a call.
template <class F, class... Args>
constexpr decltype(auto) invoke(F&& f, Args&&... args) {
    using M = std::remove_cvref_t<F>;
    if constexpr (std::is_member_pointer_v<M>) {
        return [&](auto&& obj, auto&&... rest) -> decltype(auto) {
            using C = typename member_class<M>::type;
            auto&& self = [&]() -> decltype(auto) {
                if constexpr (std::is_base_of_v<C, std::remove_cvref_t<decltype(obj)>>)
                    return std::forward<decltype(obj)>(obj);
                else return *std::forward<decltype(obj)>(obj);
            }();
            if constexpr (std::is_member_function_pointer_v<M>)
                return (std::forward<decltype(self)>(self).*
                        f)(std::forward<decltype(rest)>(rest)...);
            else return std::forward<decltype(self)>(self).*f;
        }(std::forward<Args>(args)...);
    } else {
        return std::forward<F>(f)(std::forward<Args>(args)...);
    }
}

}  // namespace mp::detail
