// mp::get_logger and mp::log_to_stderr: Python's multiprocessing logger. multiproc reports the
// lifecycle of its processes, pools, forkserver and managers through it:
//
//   mp::log_to_stderr(mp::LogLevel::info);     // [INFO/MainProcess] Pool: started 4 workers...
//   mp::get_logger().set_handler([](mp::LogLevel l, std::string_view msg) {
//       spdlog::log(l >= mp::LogLevel::warning ? spdlog::level::warn : spdlog::level::info,
//                   "{}", msg);                // spdlog, glog, a GUI: any callable
//   });
//
// Levels are Python's (debug 10, info 20, warning 30, error 40, critical 50). By default the
// level is warning and messages go to stderr as "[LEVEL/ProcessName] message" in one write:
// only warnings show (the fork-with-threads warning), as with Python's logger before
// log_to_stderr. MP_LOG=debug|info|warning|error|critical in the environment sets the level
// when the program starts (so spawned and forkserver children, which start from a fresh
// process image, can log too).
//
// Across processes: a child logs to its own stderr, which it inherits from its parent (as
// Python's children do). Under fork the child inherits the parent's level and handler (a
// copy of the parent's memory); under spawn and forkserver it starts from MP_LOG and the
// stderr handler, since a handler (code and state of the parent) cannot travel.
//
// Cost: a message below the level costs one relaxed atomic load; multiproc builds no text for
// it. Thread safety: every member may be called from any thread; a handler may run in several
// threads at once and must not log to this logger itself. Logging never takes a lock, so a
// fork child of a multi-threaded parent can log.
#pragma once

#include <atomic>
#include <string_view>
#include <utility>

namespace mp {

/// Python's logging levels (numeric values as Python's).
enum class LogLevel : int { debug = 10, info = 20, warning = 30, error = 40, critical = 50 };

/// "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" (Python's level names).
[[nodiscard]] const char* to_string(LogLevel level) noexcept;

namespace detail {
/// The logger's level as an int; read relaxed before any message is formatted.
inline constinit std::atomic<int> g_log_level{static_cast<int>(LogLevel::warning)};
}  // namespace detail

/// multiproc's logger (Python's multiprocessing.get_logger()). One per process.
class Logger {
public:
    /// Messages below `level` are dropped (Python's Logger.setLevel).
    void set_level(LogLevel level) noexcept;
    /// The current level.
    [[nodiscard]] LogLevel level() const noexcept;
    /// True when a message of `level` would be handled (Python's isEnabledFor).
    [[nodiscard]] bool is_enabled_for(LogLevel level) const noexcept {
        return static_cast<int>(level) >= detail::g_log_level.load(std::memory_order_relaxed);
    }

    /// Sends messages to f(LogLevel, std::string_view message) instead of stderr; the message
    /// has no prefix and no newline. f must be callable from any thread.
    template <class F>
    void set_handler(F f) {
        auto* held = new F(std::move(f));
        install(held,
                [](void* self, LogLevel l, std::string_view m) { (*static_cast<F*>(self))(l, m); });
    }
    /// Back to the default handler: "[LEVEL/ProcessName] message" on stderr.
    void reset_handler() noexcept;

    /// Hands `message` to the handler if `level` is enabled.
    void log(LogLevel level, std::string_view message) const noexcept;
    /// log(LogLevel::debug, message).
    void debug(std::string_view message) const noexcept { log(LogLevel::debug, message); }
    /// log(LogLevel::info, message).
    void info(std::string_view message) const noexcept { log(LogLevel::info, message); }
    /// log(LogLevel::warning, message).
    void warning(std::string_view message) const noexcept { log(LogLevel::warning, message); }
    /// log(LogLevel::error, message).
    void error(std::string_view message) const noexcept { log(LogLevel::error, message); }
    /// log(LogLevel::critical, message).
    void critical(std::string_view message) const noexcept { log(LogLevel::critical, message); }

private:
    using Call = void (*)(void*, LogLevel, std::string_view);
    // Handlers are kept until the process exits: another thread may still be inside one.
    void install(void* self, Call call);
};

/// multiproc's logger (Python's multiprocessing.get_logger()).
[[nodiscard]] Logger& get_logger() noexcept;

/// Python's log_to_stderr(): messages go to stderr as "[LEVEL/ProcessName] message".
Logger& log_to_stderr() noexcept;
/// log_to_stderr() and set_level(level), as Python's log_to_stderr(level).
Logger& log_to_stderr(LogLevel level) noexcept;

namespace detail {
/// Logs make() (a string) only when `level` is enabled: no text is built otherwise.
template <class Make>
void log_lazily(LogLevel level, Make&& make) noexcept {
    if (static_cast<int>(level) < g_log_level.load(std::memory_order_relaxed)) return;
    try {
        get_logger().log(level, std::forward<Make>(make)());
    } catch (...) {
        // Out of memory while formatting a diagnostic: the diagnostic is dropped.
    }
}
/// Names the current process in the default handler's prefix (the process layer installs it).
void set_log_process_name_source(const char* (*source)() noexcept) noexcept;
}  // namespace detail

}  // namespace mp
