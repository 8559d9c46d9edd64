// Waits, manager calls and Process starts and exits on the timeline, from any process: the
// recording process adds them to its session; a child appends them to its own file in the
// parent's directory, which the parent merges when it writes (layout: trace_hook.hpp).
//
//   /tmp/multiproc-trace-<recording pid>/wait_ns        the threshold, written by the parent
//   /tmp/multiproc-trace-<recording pid>/<pid>.events   one line per event of child <pid>:
//                                                       pid TAB cat TAB start TAB end TAB name
//                                                       TAB args (JSON members) NEWLINE
//
// A child writes each line with one write(2) on an O_APPEND file, so a child killed at any
// point leaves whole lines and at most a torn last one, which the parent skips.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "multiproc/trace.hpp"
#include "trace_hook.hpp"

namespace mp::detail::trace {

std::atomic<bool> g_events_on{false};

namespace {

std::atomic<std::uint64_t> g_threshold_ns{1'000'000};
std::atomic<bool> g_threshold_set{false};    // by set_wait_threshold: MP_TRACE_WAIT_US yields
std::atomic<bool> g_children_record{false};  // between children_begin and children_end
pid_t g_self = 0;                            // this process
bool g_child = false;                        // events go to g_dir/<pid>.events, not to the session
std::string g_dir;                           // the recording's directory
std::FILE* g_file = nullptr;                 // this child's events file, opened at its first event
std::mutex g_file_m;
std::map<std::string, std::uint64_t>* g_consumed = nullptr;  // bytes merged, per child file

std::string dir_of(pid_t recorder) { return "/tmp/multiproc-trace-" + std::to_string(recorder); }

pid_t own_pid() {
    std::error_code ec;
    const auto p = std::filesystem::read_symlink("/proc/self", ec);
    return ec ? 0 : static_cast<pid_t>(std::atoi(p.c_str()));
}

std::string one_line(std::string s) {
    std::replace_if(
        s.begin(), s.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
    return s;
}

void append_to_file(const SpanEvent& e) {
    std::lock_guard lk(g_file_m);
    if (!g_file) {
        g_file = std::fopen((g_dir + "/" + std::to_string(g_self) + ".events").c_str(), "a");
        if (!g_file) {
            g_events_on.store(false, std::memory_order_relaxed);  // the recording has ended
            return;
        }
        static char buf[1 << 14];
        std::setvbuf(g_file, buf, _IOFBF, sizeof buf);
    }
    const std::string line = std::to_string(e.pid) + '\t' + one_line(e.cat) + '\t' +
                             std::to_string(e.start) + '\t' + std::to_string(e.end) + '\t' +
                             one_line(e.name) + '\t' + one_line(e.args) + '\n';
    if (line.size() > (1 << 14)) return;  // one buffer, so one write(2)
    std::fwrite(line.data(), 1, line.size(), g_file);
    std::fflush(g_file);
}

// One line of a child's file as an event; false when it is not one.
bool parse_line(const std::string& line, SpanEvent& e) {
    std::string f[6];
    std::size_t at = 0;
    for (int i = 0; i < 5; ++i) {
        const auto tab = line.find('\t', at);
        if (tab == std::string::npos) return false;
        f[i] = line.substr(at, tab - at);
        at = tab + 1;
    }
    f[5] = line.substr(at);
    char* end = nullptr;
    e.pid = static_cast<pid_t>(std::strtol(f[0].c_str(), &end, 10));
    e.cat = f[1];
    e.start = std::strtoull(f[2].c_str(), &end, 10);
    e.end = std::strtoull(f[3].c_str(), &end, 10);
    e.name = f[4];
    e.args = f[5];
    return e.pid > 0;
}

}  // namespace

std::uint64_t wait_threshold_ns() noexcept {
    return g_threshold_ns.load(std::memory_order_relaxed);
}

void record(SpanEvent&& e) noexcept {
    try {
        if (!e.pid) e.pid = g_self;
        if (g_child) append_to_file(e);
        else add(std::move(e));
    } catch (...) {
        // A lost event is better than a failed queue get or lock.
    }
}

void WaitSpan::done() noexcept {
    const std::uint64_t t1 = now_ns();
    if (t1 - t0_ < wait_threshold_ns()) return;
    record(SpanEvent{0, what_, "wait", t0_, t1,
                     "\"wait_us\":" + std::to_string((t1 - t0_) / 1000)});
}

bool children_record() noexcept { return g_children_record.load(std::memory_order_relaxed); }

void child_started(pid_t parent, pid_t self, bool parent_records) noexcept {
    g_events_on.store(false, std::memory_order_relaxed);
    g_children_record.store(false, std::memory_order_relaxed);  // the directory is the parent's
    g_child = false;
    g_file = nullptr;            // a forked parent's file is the parent's to close
    new (&g_file_m) std::mutex;  // another thread of the parent may have held it at fork
    g_self = self;
    if (!parent_records) return;
    try {
        const std::string dir = dir_of(parent);
        std::FILE* f = std::fopen((dir + "/wait_ns").c_str(), "r");
        if (!f) return;
        unsigned long long ns = 0;
        const bool ok = std::fscanf(f, "%llu", &ns) == 1;
        std::fclose(f);
        if (!ok) return;
        g_dir = dir;
        g_threshold_ns.store(ns, std::memory_order_relaxed);
        g_child = true;
        g_events_on.store(true, std::memory_order_relaxed);
    } catch (...) {
    }
}

void process_started(pid_t pid, const std::string& name, std::string_view method,
                     std::uint64_t t0) {
    if (!g_self) g_self = own_pid();
    ProcessEvent sup;
    sup.pid = g_self;
    sup.name = "supervisor";
    sup.supervisor = true;
    sup.start = sup.started = t0;
    add(std::move(sup));  // once: a second one for the same pid is dropped
    ProcessEvent p;
    p.pid = pid;
    p.name = name;
    p.method = std::string(method);
    p.start = t0;
    p.started = now_ns();
    add(std::move(p));
}

void process_ended(pid_t pid, int code) {
    const std::uint64_t now = now_ns();
    const std::string how = code >= 0 ? "exited with code " + std::to_string(code)
                                      : "killed by signal " + std::to_string(-code);
    if (!process_exited(pid, now, how)) return;
    record(SpanEvent{0, "process " + std::to_string(pid) + " " + how, "process", now, now,
                     "\"pid\":" + std::to_string(pid) + ",\"exitcode\":" + std::to_string(code)});
}

void children_begin(std::uint64_t threshold_ns) {
    if (!g_threshold_set.load(std::memory_order_relaxed))
        if (const char* us = std::getenv("MP_TRACE_WAIT_US"); us && *us)
            threshold_ns = std::strtoull(us, nullptr, 10) * 1000;
    g_threshold_ns.store(threshold_ns, std::memory_order_relaxed);
    g_self = own_pid();
    g_child = false;
    if (!g_consumed) g_consumed = new std::map<std::string, std::uint64_t>;  // used from atexit
    g_consumed->clear();
    g_dir = dir_of(g_self);
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);  // a dead process's of the same pid
    std::filesystem::create_directories(g_dir, ec);
    if (std::FILE* f = std::fopen((g_dir + "/wait_ns").c_str(), "w")) {
        std::fprintf(f, "%llu\n", static_cast<unsigned long long>(threshold_ns));
        std::fclose(f);
    }
    g_children_record.store(true, std::memory_order_relaxed);
}

void children_merge(Recording& r) {
    if (g_child || g_dir.empty() || !g_consumed) return;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(g_dir, ec)) {
        if (entry.path().extension() != ".events") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::uint64_t& done = (*g_consumed)[entry.path().string()];
        in.seekg(static_cast<std::streamoff>(done));
        std::string line;
        // Only whole lines: a line without its newline is being written, or torn by a kill.
        while (std::getline(in, line) && !in.eof()) {
            done += line.size() + 1;
            SpanEvent e;
            if (parse_line(line, e)) r.spans.push_back(std::move(e));
        }
    }
}

void children_end() {
    if (g_child || g_dir.empty()) return;
    g_children_record.store(false, std::memory_order_relaxed);
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
    g_dir.clear();
}

}  // namespace mp::detail::trace

namespace mp::trace {

void set_wait_threshold(std::chrono::microseconds threshold) {
    detail::trace::g_threshold_set.store(true, std::memory_order_relaxed);
    detail::trace::g_threshold_ns.store(static_cast<std::uint64_t>(threshold.count()) * 1000,
                                        std::memory_order_relaxed);
}

}  // namespace mp::trace
