// Shipping a call to another process: functions cross by IDENTITY, arguments by the codec.
//
// A call travels as bytes plus the descriptors its arguments carry:
//
//   +-------+----------------------+----------------------+---------------------+
//   | magic | identity of a typed  | the target: identity | the arguments,      |
//   | u32   | thunk<F, Fin, W...>  | / closure bytes / -  | encoded in order    |
//   +-------+----------------------+----------------------+---------------------+
//   identity = u8 flags (1: the main executable) | u8 id kind | u8 n | n id bytes
//            | u64 path length | path (empty for the main executable) | u64 offset
//
// A code address is identified by the module that contains it (its GNU build id, or a hash of
// its path, size and mtime when it has none), that module's path, and the offset from the
// module's load base. The receiver finds the module among those it has loaded (dlopen'ing a
// shared library by path when it is not loaded yet) and adds the offset to its own base, so a
// call resolves in a forked child, in a spawned child (a fresh exec of the same binary, loaded
// at another address by ASLR) and in an MPI rank on another host running the same binaries. A
// module whose build id differs from the sender's is an mp::ProcessError ("binary mismatch"); a
// library is dlopen'ed only once its file's build id matched. A decoded address must be an entry
// point, else mp::ProcessError naming module and offset: the call's first identity the start of
// a thunk, a target the start of a function of the module's symbol table (docs/callable.md:
// what a stripped binary can ship).
//
// What can be shipped (mp::ShippableCall / mp::is_shippable_callable_v):
//   - function pointers (a function's name decays to one),
//   - captureless lambdas and empty function objects (only their type travels: the thunk knows it),
//   - lambdas and function objects that are trivially copyable (all captures trivially
//     copyable) and hold no pointer, reference or union: their value bytes travel (padding is
//     left out, captured bools are checked on arrival: see reduction.hpp); or function objects
//     with a cereal-style serialize,
//   - with arguments that satisfy mp::is_shippable_v (string literals travel as std::string);
//     handles among them (Connection, ...) carry their descriptors beside the bytes.
// Not shippable: std::function, closures capturing non-trivially-copyable values (std::string,
// std::vector, ...), closures capturing a pointer, a reference (the address means nothing in
// another process), a std::optional or a std::variant (unchecked tags), pointers to members.
//
// In the child the target is called with the child's decoded copies of the arguments: moved in
// when it accepts rvalues, else as lvalues (so a `T&` parameter binds to the child's own copy,
// as under fork).
//
// Thread safety: every function here may be called from any thread. The module list behind
// identities is a shared snapshot rebuilt only when a library was loaded or unloaded; a thunk's
// identity is computed once per instantiation. Nothing here blocks except dlopen of a library
// that a received call needs and this process has not loaded.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "multiproc/detail/fd.hpp"
#include "multiproc/detail/std_parts.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"

namespace mp {
namespace detail {

/// How a callable's target travels.
enum class TargetKind {
    function_pointer,        ///< by identity
    empty_object,            ///< by type only (captureless lambda, empty function object)
    raw_object,              ///< trivially copyable closure / function object: its value bytes
    codec_object,            ///< function object with a cereal-style serialize: the codec
    member_pointer,          ///< not shippable
    std_function,            ///< not shippable (type-erased)
    not_callable,            ///< not shippable (not a function nor a class)
    not_trivially_copyable,  ///< not shippable: captures or members that cannot travel as bytes
                             ///< (not trivially copyable, or a pointer, reference or union)
};

template <class T>
struct is_std_function : std::false_type {};
template <class S>
struct is_std_function<std::function<S>> : std::true_type {};

template <class F>
constexpr TargetKind target_kind() {
    using Fn = std::decay_t<F>;
    if constexpr (std::is_pointer_v<Fn> && std::is_function_v<std::remove_pointer_t<Fn>>)
        return TargetKind::function_pointer;
    else if constexpr (std::is_member_pointer_v<Fn>) return TargetKind::member_pointer;
    else if constexpr (is_std_function<Fn>::value) return TargetKind::std_function;
    else if constexpr (!std::is_class_v<Fn>) return TargetKind::not_callable;
    else if constexpr (user_codec<Fn> && std::is_default_constructible_v<Fn> && encodable<Fn>())
        return TargetKind::codec_object;
    else if constexpr (std::is_trivially_copyable_v<Fn> && std::is_empty_v<Fn>)
        return TargetKind::empty_object;
    else if constexpr (std::is_trivially_copyable_v<Fn> && encodable<Fn>())
        return TargetKind::raw_object;
    else return TargetKind::not_trivially_copyable;
}

/// The type an argument is stored as in the child: decayed; a char array (a string literal)
/// becomes std::string.
template <class T>
struct stored_arg {
    using type = std::decay_t<T>;
};
template <std::size_t N>
struct stored_arg<char[N]> {
    using type = std::string;
};
template <std::size_t N>
struct stored_arg<const char[N]> {
    using type = std::string;
};
template <class T>
using stored_arg_t = typename stored_arg<std::remove_cvref_t<T>>::type;

template <class T>
constexpr bool arg_ok() {
    return is_shippable_v<T> &&
           (std::is_trivially_copyable_v<T> ||
            std::is_default_constructible_v<T>)&&std::is_move_constructible_v<T>;
}

/// Everything package_call / package_task need to know about F called with Args.
template <class F, class... Args>
struct call_traits {
    using target = std::decay_t<F>;
    static constexpr TargetKind kind = target_kind<F>();
    static constexpr bool target_ok =
        kind == TargetKind::function_pointer || kind == TargetKind::empty_object ||
        kind == TargetKind::raw_object || kind == TargetKind::codec_object;
    static constexpr bool args_ok = (arg_ok<stored_arg_t<Args>>() && ...);
    // The receiver moves its decoded copies into the call when the target accepts rvalues, and
    // passes them as lvalues otherwise (a T& parameter then binds to the child's own copy, as
    // under fork).
    static constexpr bool by_rvalue = std::is_invocable_v<target&, stored_arg_t<Args>&&...>;
    static constexpr bool invocable =
        by_rvalue || std::is_invocable_v<target&, stored_arg_t<Args>&...>;
    using raw_result = typename std::conditional_t<
        by_rvalue, std::invoke_result<target&, stored_arg_t<Args>&&...>,
        std::conditional_t<invocable, std::invoke_result<target&, stored_arg_t<Args>&...>,
                           std::type_identity<void>>>::type;
    using result = std::remove_cvref_t<raw_result>;
    static constexpr bool result_ok =
        std::is_void_v<result> ||
        (is_shippable_v<result> && std::is_move_constructible_v<result> &&
         (std::is_trivially_copyable_v<result> || std::is_default_constructible_v<result>));
    static constexpr bool call_ok = target_ok && args_ok && invocable;
    static constexpr bool task_ok = call_ok && result_ok;
};

}  // namespace detail

/// F called with arguments of types Args can run in a process that did not inherit this one's
/// memory (spawn, forkserver, a Pool worker, an MPI rank): see the table in docs/callable.md.
template <class F, class... Args>
concept ShippableCall = detail::call_traits<F, Args...>::call_ok;

/// As ShippableCall, and the result (if not void) can travel back: what a Pool task needs.
template <class F, class... Args>
concept ShippableTask = detail::call_traits<F, Args...>::task_ok;

/// True when F called with Args can be shipped (ShippableCall as a value).
template <class F, class... Args>
inline constexpr bool is_shippable_callable_v = ShippableCall<F, Args...>;

namespace detail {

/// A call ready to travel: its bytes and the descriptors of the handles among its arguments
/// (not owned: they stay open as long as the sender holds the argument copies).
struct ShippedCall {
    std::vector<std::byte> bytes;
    std::vector<int> fds;
};

/// The result of package_call: exactly one of `call` and `why_not` is set.
struct CallPackage {
    std::optional<ShippedCall> call;
    std::string why_not;
};

/// The fixed, type-erased signature every thunk has: decode target and arguments from `in`,
/// call, and when `out` is non-null encode what the call's Finish policy writes (the task
/// engine's: status, result or exception; detail/task_protocol.hpp).
using ThunkFn = void (*)(Decoder& in, Encoder* out);

inline constexpr std::uint32_t call_magic = 0x3143504dU;  // "MPC1" in memory on little endian

// --- identities (src/callable.cpp) ---------------------------------------------------------

/// The encoded identity of a code address (throws mp::ProcessError when no loaded module
/// contains it: JIT or heap code cannot be identified).
std::vector<std::byte> code_identity(std::uintptr_t addr);
/// Appends the identity of a code address (same errors as code_identity).
void encode_code_address(Encoder& e, std::uintptr_t addr);
/// What a decoded identity must be the start of.
enum class EntryKind {
    thunk,     ///< a thunk of this library (thunk, chunk_thunk): the call's entry
    function,  ///< any function of the module's symbol table: a target, a Barrier's action
};
/// Decodes an identity and returns that code's address in this process, loading its shared
/// library if needed (only once the file's build id matched). mp::DecodeError on corrupt bytes,
/// mp::ProcessError on a binary mismatch, a module that cannot be loaded, or an address that is
/// not the start of an entry point of that kind.
std::uintptr_t resolve_code_address(Decoder& d, EntryKind kind);
/// Builds now the module tables that identifying and resolving code use (the forkserver does
/// this once, so that none of its children builds them after the fork).
void warm_code_identities();

/// Where a code address lives: for diagnostics and tests.
struct ModuleInfo {
    std::string path;                 ///< absolute path of the module's file
    bool is_main = false;             ///< the main executable
    bool has_build_id = false;        ///< false: identified by a hash of path, size and mtime
    std::string id;                   ///< describe(): "build id 1a2b..." / "file hash ..."
    std::vector<std::byte> id_bytes;  ///< the identifying bytes as they travel
    std::uintptr_t base = 0;          ///< this process's load base of the module
    std::uintptr_t offset = 0;        ///< the address's offset from base
};
/// The module containing addr in this process, if any.
std::optional<ModuleInfo> module_of(std::uintptr_t addr);

/// The address of a function, as an integer.
template <class R, class... A>
std::uintptr_t code_address(R (*f)(A...)) noexcept {
    return reinterpret_cast<std::uintptr_t>(f);
}

/// Demangled, abbreviated name of a type (std::string for std::__cxx11::basic_string<char...>).
std::string readable_type_name(const std::type_info& t);

// Reasons, built only when something cannot ship.
std::string target_reason(TargetKind kind, const std::type_info& target);
std::string arg_reason(std::size_t index, const std::type_info& type, const char* why);
std::string not_invocable_reason(const std::type_info& target, std::vector<std::string> args);

/// Writes the magic and the thunk's identity: the start of every package.
void begin_package(Encoder& e, const std::vector<std::byte>& thunk_identity);
/// Checks the magic and resolves the thunk of a received package.
ThunkFn open_package(Decoder& d);

// --- the typed halves ---------------------------------------------------------------------

template <class T>
constexpr const char* arg_problem() {
    if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T>)
        return "a raw pointer's address means nothing in another process; send the value it "
               "points to";
    else if constexpr (is_view<T>::value)
        return "std::string_view / std::span refer to memory of this process; send a "
               "std::string or std::vector";
    else if constexpr (!is_shippable_v<T>)
        return "it is not trivially copyable, not a supported standard type, and has no "
               "cereal-style serialize(Ar&) nor save/load";
    else if constexpr (!std::is_move_constructible_v<T>) return "it is not move constructible";
    else return "the codec decodes it through serialize(Ar&), which needs a default constructor";
}

template <class F>
F decode_target(Decoder& in) {
    constexpr TargetKind k = target_kind<F>();
    if constexpr (k == TargetKind::function_pointer) {
        return reinterpret_cast<F>(resolve_code_address(in, EntryKind::function));
    } else if constexpr (k == TargetKind::empty_object) {
        return std::bit_cast<F>(std::array<std::byte, sizeof(F)>{});
    } else {
        return decode_value<F>(in);
    }
}

template <class F>
void encode_target(Encoder& e, const F& f) {
    constexpr TargetKind k = target_kind<F>();
    if constexpr (k == TargetKind::function_pointer)
        encode_code_address(e, reinterpret_cast<std::uintptr_t>(f));
    else if constexpr (k == TargetKind::empty_object) {
    } else e(f);
}

template <class A>
void encode_arg(Encoder& e, const A& a) {
    if constexpr (std::is_array_v<A> &&
                  std::is_same_v<std::remove_cv_t<std::remove_extent_t<A>>, char>) {
        // A char array (a string literal) travels as the std::string the child receives: up to
        // its first NUL, or whole when it has none.
        const std::string_view s(a, std::char_traits<char>::find(a, std::extent_v<A>, '\0')
                                        ? std::char_traits<char>::length(a)
                                        : std::extent_v<A>);
        e.write_size(s.size());
        e.write_bytes(s.data(), s.size());
    } else {
        e(a);
    }
}

/// How a thunk decodes an argument stored as W and hands it to the target: decoded by the codec,
/// moved in when the target accepts rvalues, else passed as an lvalue. A specialization may
/// offer a third form the target is tried with first (has_span_form): the task engine's large
/// vector arguments, read in place from shared memory (detail/task.hpp's BulkArg).
template <class W>
struct arg_wire {
    static constexpr bool has_span_form = false;
    static W decode(Decoder& in) { return decode_value<W>(in); }
    static W&& span_form(W& w) noexcept { return std::move(w); }
    static W&& rvalue_form(W& w) noexcept { return std::move(w); }
    static W& lvalue_form(W& w) noexcept { return w; }
};
template <class W>
using span_form_t = decltype(arg_wire<W>::span_form(std::declval<W&>()));
template <class W>
using rvalue_form_t = decltype(arg_wire<W>::rvalue_form(std::declval<W&>()));
template <class W>
using lvalue_form_t = decltype(arg_wire<W>::lvalue_form(std::declval<W&>()));

/// Calls f with the decoded arguments in the first form it accepts (span, rvalue, lvalue).
template <class F, class... W, std::size_t... I>
decltype(auto) invoke_stored(F& f, std::tuple<W...>& args, std::index_sequence<I...>) {
    if constexpr ((arg_wire<W>::has_span_form || ...) && std::is_invocable_v<F&, span_form_t<W>...>)
        return detail::invoke(f, arg_wire<W>::span_form(std::get<I>(args))...);
    else if constexpr (std::is_invocable_v<F&, rvalue_form_t<W>...>)
        return detail::invoke(f, arg_wire<W>::rvalue_form(std::get<I>(args))...);
    else return detail::invoke(f, arg_wire<W>::lvalue_form(std::get<I>(args))...);
}

/// A thunk's Finish policy for a call whose result nobody reads (a Process's target): `out`
/// stays untouched.
struct DiscardResult {
    template <class Call>
    static void finish(Call&& call, Encoder*) {
        static_cast<void>(call());
    }
};

/// The one typed half of a shipped call: F is the target type (function pointer or class), W
/// the stored argument types (each decoded and handed over as arg_wire<W> says), Finish what
/// becomes of the call and its result: Finish::finish(call, out) runs call() (the target on
/// the decoded arguments) and may encode into out (null when the caller wants nothing back).
// Hot: the first code of the program a child runs (grouped with the rest of the child's path in
// .text.hot; see src/current_process.cpp).
template <class F, class Finish, class... W>
[[gnu::hot]] void thunk(Decoder& in, Encoder* out) {
    F fn = decode_target<F>(in);
    // Braced initialization evaluates left to right: arguments decode in the order they were
    // encoded.
    std::tuple<W...> args{arg_wire<W>::decode(in)...};
    in.finish();
    Finish::finish(
        [&]() -> decltype(auto) {
            return invoke_stored(fn, args, std::index_sequence_for<W...>{});
        },
        out);
}

/// The identity of one thunk instantiation (any ThunkFn of this library), computed once.
template <ThunkFn Fn>
const std::vector<std::byte>& thunk_identity() {
    static const std::vector<std::byte> id = code_identity(reinterpret_cast<std::uintptr_t>(Fn));
    return id;
}

/// Starts a package for thunk Fn: magic, the thunk's identity, then the target.
template <ThunkFn Fn, class F>
void begin_call(Encoder& e, const F& f) {
    const auto& id = thunk_identity<Fn>();
    e.bytes().reserve(128 + id.size());
    begin_package(e, id);
    encode_target<std::decay_t<F>>(e, f);
}

/// Packages f(args...) for thunk<F, Finish, stored args...>.
template <class Finish, class F, class... Args>
ShippedCall encode_call(const F& f, const Args&... args) {
    Encoder e;
    begin_call<&thunk<std::decay_t<F>, Finish, stored_arg_t<Args>...>>(e, f);
    (encode_arg(e, args), ...);
    return ShippedCall{std::move(e.bytes()), e.fds()};
}

template <class... Args, std::size_t... I>
std::string first_bad_arg(std::index_sequence<I...>) {
    std::string why;
    static_cast<void>(((arg_ok<stored_arg_t<Args>>()
                            ? false
                            : (why = arg_reason(I + 1, typeid(stored_arg_t<Args>),
                                                arg_problem<stored_arg_t<Args>>()),
                               true)) ||
                       ...));
    return why;
}

/// Packages f(args...) for a process started with spawn or forkserver. Never fails to compile:
/// what cannot ship is reported in why_not, naming the part and the reason.
template <class F, class... Args>
CallPackage package_call(const F& f, const Args&... args) {
    using T = call_traits<F, Args...>;
    if constexpr (!T::target_ok) {
        return {std::nullopt, target_reason(T::kind, typeid(typename T::target))};
    } else if constexpr (!T::args_ok) {
        return {std::nullopt, first_bad_arg<Args...>(std::index_sequence_for<Args...>{})};
    } else if constexpr (!T::invocable) {
        return {std::nullopt,
                not_invocable_reason(typeid(typename T::target),
                                     {readable_type_name(typeid(stored_arg_t<Args>))...})};
    } else {
        if constexpr (T::kind == TargetKind::function_pointer) {
            const typename T::target fp = f;  // a function's name decays here
            if (fp == nullptr) return {std::nullopt, "the target is a null function pointer"};
            try {
                static_cast<void>(code_identity(reinterpret_cast<std::uintptr_t>(fp)));
            } catch (const ProcessError& e) {
                return {std::nullopt, e.what()};
            }
        }
        return {encode_call<DiscardResult>(f, args...), {}};
    }
}

/// Runs a received call in this process; the result is discarded. Throws what the target
/// throws, mp::DecodeError on corrupt bytes, mp::ProcessError on a binary mismatch or an
/// identity that is not an entry point.
void run_shipped_call(std::span<const std::byte> bytes, std::span<UniqueFd> fds);

}  // namespace detail
}  // namespace mp
