// The logger: a level in one atomic, a handler behind one atomic pointer, so that logging
// takes no lock (a fork child of a multi-threaded parent may log) and a message below the level
// costs one relaxed load.
#include "multiproc/logging.hpp"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sys/io.hpp"
#include "sys/process.hpp"

namespace mp {

namespace {

struct Handler {
    void* self;
    void (*call)(void*, LogLevel, std::string_view);
};

std::atomic<const Handler*> g_handler{nullptr};  // null: stderr
std::atomic<const char* (*)() noexcept> g_name_source{nullptr};

// Every handler ever installed, never freed (reachable, so not a leak to a leak checker).
std::vector<std::unique_ptr<Handler>>& installed() {
    static auto* all = new std::vector<std::unique_ptr<Handler>>;
    return *all;
}
std::mutex& install_mutex() {
    static auto* m = new std::mutex;
    return *m;
}

// MP_LOG=<level name> sets the level at start-up (spawned children read it too).
const bool g_from_env = [] {
    const char* v = std::getenv("MP_LOG");
    if (!v) return false;
    const std::string_view s(v);
    for (const auto l : {LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error,
                         LogLevel::critical}) {
        std::string name(to_string(l));
        for (auto& c : name) c = static_cast<char>(c - 'A' + 'a');
        if (s == name || s == to_string(l)) {
            detail::g_log_level.store(static_cast<int>(l), std::memory_order_relaxed);
            return true;
        }
    }
    return false;
}();

void to_stderr(LogLevel level, std::string_view message) noexcept {
    try {
        const auto source = g_name_source.load(std::memory_order_acquire);
        std::string line;
        line.reserve(message.size() + 32);
        line += '[';
        line += to_string(level);
        line += '/';
        if (source) line += source();
        else line += "pid " + std::to_string(sys::current_pid());
        line += "] ";
        line += message;
        line += '\n';
        sys::write_stderr(line);  // one write: lines of several processes never interleave
    } catch (...) {
        sys::write_stderr(message);
    }
}

}  // namespace

const char* to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::debug: return "DEBUG";
        case LogLevel::info: return "INFO";
        case LogLevel::warning: return "WARNING";
        case LogLevel::error: return "ERROR";
        case LogLevel::critical: return "CRITICAL";
    }
    return "LEVEL";
}

void Logger::set_level(LogLevel level) noexcept {
    detail::g_log_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel Logger::level() const noexcept {
    return static_cast<LogLevel>(detail::g_log_level.load(std::memory_order_relaxed));
}

void Logger::install(void* self, Call call) {
    std::lock_guard lk(install_mutex());
    installed().push_back(std::make_unique<Handler>(Handler{self, call}));
    g_handler.store(installed().back().get(), std::memory_order_release);
}

void Logger::reset_handler() noexcept { g_handler.store(nullptr, std::memory_order_release); }

void Logger::log(LogLevel level, std::string_view message) const noexcept {
    if (!is_enabled_for(level)) return;
    const Handler* h = g_handler.load(std::memory_order_acquire);
    if (!h) {
        to_stderr(level, message);
        return;
    }
    try {
        h->call(h->self, level, message);
    } catch (...) {
        // A handler that throws loses its message; logging never fails the caller.
    }
}

Logger& get_logger() noexcept {
    static Logger logger;
    static_cast<void>(g_from_env);
    return logger;
}

Logger& log_to_stderr() noexcept {
    Logger& l = get_logger();
    l.reset_handler();
    return l;
}

Logger& log_to_stderr(LogLevel level) noexcept {
    Logger& l = log_to_stderr();
    l.set_level(level);
    return l;
}

namespace detail {
void set_log_process_name_source(const char* (*source)() noexcept) noexcept {
    g_name_source.store(source, std::memory_order_release);
}
}  // namespace detail

}  // namespace mp
