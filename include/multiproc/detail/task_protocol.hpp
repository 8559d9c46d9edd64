// The task engine's task protocol (detail/engine.hpp): how a task is packaged for a worker,
// run there, and how its result travels back.
//
//   task    a shipped call (callable.hpp: magic | thunk identity | target | arguments) whose
//           thunk finishes with TaskResult<R>
//   result  u8 TaskStatus ok | R (the codec)           the target returned (void: the status only)
//           u8 TaskStatus error | exception (the codec) it threw, or the call could not even run
//
// package_task is the plain form (no shared memory), with the reasons of what cannot ship as
// compile-time errors; detail/task.hpp packages the engine's tasks (package_pool_task, chunks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <type_traits>
#include <utility>

#include "multiproc/callable.hpp"
#include "multiproc/detail/fd.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/reduction.hpp"

namespace mp::detail {

/// The result of a task, as written by run_shipped_task: a status byte, then the value or the
/// exception.
enum class TaskStatus : std::uint8_t { ok = 0, error = 1 };

/// Writes (error, exception) into a task result: for the task engine, also when
/// run_shipped_task itself threw (corrupt bytes, binary mismatch).
void encode_task_error(Encoder& out, const std::exception_ptr& error);
/// Reads a task result's status; on error rethrows the transported exception.
void read_task_status(Decoder& d);

/// A thunk's Finish policy for a task (callable.hpp's thunk): encodes (ok, result), or (error,
/// exception) when the target threw; with no `out`, only calls.
template <class R>
struct TaskResult {
    template <class Call>
    static void finish(Call&& call, Encoder* out) {
        if (!out) {
            static_cast<void>(call());
            return;
        }
        const std::size_t mark = out->bytes().size();
        const auto ok = static_cast<std::uint8_t>(TaskStatus::ok);
        try {
            if constexpr (std::is_void_v<R>) {
                static_cast<void>(call());
                out->write_bytes(&ok, 1);
            } else {
                R r = call();
                out->write_bytes(&ok, 1);
                (*out)(r);
            }
        } catch (...) {
            out->bytes().resize(mark);
            encode_task_error(*out, std::current_exception());
        }
    }
};

template <std::size_t I, class A>
constexpr bool check_task_arg() {
    static_assert(arg_ok<A>(),
                  "multiproc: a task argument cannot be shipped to the worker process: its type "
                  "is not encodable by the codec (mp::is_shippable_v is false: a raw pointer, a "
                  "view, a type that is neither trivially copyable, a supported standard type, "
                  "nor has serialize(Ar&)). The argument's position (from 1) and type are the "
                  "template arguments of check_task_arg in this diagnostic.");
    return true;
}

template <class... Args, std::size_t... I>
constexpr bool check_task_args(std::index_sequence<I...>) {
    return (check_task_arg<I + 1, stored_arg_t<Args>>() && ...);
}

/// The result type a task's thunk encodes, and decode_task_result must be asked for.
template <class F, class... Args>
using task_result_t = typename call_traits<F, Args...>::result;

/// Packages a task for a Pool/Executor worker. What cannot ship is a compile-time error whose
/// message states the reason.
template <class F, class... Args>
ShippedCall package_task(const F& f, const Args&... args) {
    using T = call_traits<F, Args...>;
    static_assert(T::target_ok,
                  "multiproc: this task's target cannot be shipped to a worker process: only "
                  "function pointers, captureless lambdas and lambdas or function objects whose "
                  "captures are all trivially copyable can (not std::function, not a lambda "
                  "capturing a std::string, a container or another non-trivially-copyable "
                  "value, nor a pointer, a reference, a std::optional or a std::variant). Pass "
                  "the data as an argument of the task instead.");
    if constexpr (T::target_ok) {
        static_assert(check_task_args<Args...>(std::index_sequence_for<Args...>{}));
        if constexpr (T::args_ok) {
            static_assert(T::invocable,
                          "multiproc: the task's target cannot be called with these arguments "
                          "(the worker calls it with its decoded copies of the arguments)");
            if constexpr (T::invocable) {
                static_assert(T::result_ok,
                              "multiproc: the task's result type cannot be shipped back from the "
                              "worker (mp::is_shippable_v of the result is false)");
                if constexpr (T::result_ok) {
                    if constexpr (std::is_pointer_v<F>) {
                        if (f == nullptr)
                            throw UsageError(
                                "multiproc: a task's target is a null function pointer");
                    }
                    return encode_call<TaskResult<typename T::result>>(f, args...);
                }
            }
        }
    }
    return {};
}

/// Runs a received task and appends to `out` either (ok, result) or (error, exception) when the
/// target threw. Corrupt bytes (mp::DecodeError) and a binary mismatch (mp::ProcessError) are
/// thrown instead, with `out` untouched; encode_task_error turns them into a task failure.
void run_shipped_task(std::span<const std::byte> bytes, std::span<UniqueFd> fds, Encoder& out);

/// Decodes what run_shipped_task wrote: returns the result, or rethrows the transported
/// exception (the same standard type, else mp::RemoteError).
template <class R>
R decode_task_result(std::span<const std::byte> bytes, std::span<UniqueFd> fds = {}) {
    Decoder d(bytes, fds);
    read_task_status(d);
    return decode_rest<R>(d);
}

}  // namespace mp::detail
