// The recording session behind mp::trace and mp::performance_report: one store per process,
// shared by a timeline and any number of report scopes; the last one to end switches it off.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <utility>

#include "multiproc/trace.hpp"
#include "trace_hook.hpp"

namespace mp::detail::trace {

std::atomic<bool> g_on{false};

namespace {

struct Session {
    std::mutex m;
    Recording rec;
    std::string json;      // the timeline's file ("" when none records)
    int reports = 0;       // live performance_report scopes (and MP_REPORT)
    std::string env_html;  // MP_REPORT's file
    std::string env_json;  // MP_TRACE's file
    std::atomic<Provider> provider{nullptr};
};

// Never destroyed: a report may be written from an atexit handler after static destructors.
Session& session() {
    static Session* s = new Session;
    return *s;
}

void ask(Ask what) {
    if (const Provider p = session().provider.load(std::memory_order_acquire)) p(what);
}

// A user of the session begins: the first one clears the store and switches recording on.
void begin_user(const std::string* json) {
    auto& s = session();
    bool first = false;
    {
        std::lock_guard lk(s.m);
        first = s.json.empty() && s.reports == 0;
        if (first) {
            s.rec = Recording{};
            s.rec.t0 = now_ns();
            children_begin(wait_threshold_ns());
        }
        if (json) s.json = *json;
        else ++s.reports;
        if (first) {
            g_on.store(true, std::memory_order_relaxed);
            g_events_on.store(true, std::memory_order_relaxed);
        }
    }
    if (first) ask(Ask::start);
}

// A user ends: what was recorded so far (workers' rings included) is written to `path`, as a
// timeline (json) or a report; the last user switches recording off.
bool end_user(bool json, const std::string& path) {
    auto& s = session();
    ask(Ask::drain);
    Recording snapshot;
    bool last = false;
    {
        std::lock_guard lk(s.m);
        if (json) s.json.clear();
        else --s.reports;
        last = s.json.empty() && s.reports <= 0;
        s.rec.t1 = now_ns();
        children_merge(s.rec);
        if (last) {
            g_on.store(false, std::memory_order_relaxed);
            g_events_on.store(false, std::memory_order_relaxed);
            children_end();
            snapshot = std::move(s.rec);
            s.rec = Recording{};
        } else {
            snapshot = s.rec;
        }
    }
    if (last) ask(Ask::stop);
    return json ? write_json(snapshot, path) : write_report(snapshot, path);
}

void complain(const std::string& path) noexcept {
    std::fprintf(stderr, "multiproc: could not write %s\n", path.c_str());
}

}  // namespace

std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

void add(TaskEvent&& e) {
    auto& s = session();
    std::lock_guard lk(s.m);
    if (on()) s.rec.tasks.push_back(std::move(e));
}

void add(std::vector<TaskEvent>&& es) {
    auto& s = session();
    std::lock_guard lk(s.m);
    if (!on()) return;
    if (s.rec.tasks.empty()) s.rec.tasks = std::move(es);
    else
        s.rec.tasks.insert(s.rec.tasks.end(), std::make_move_iterator(es.begin()),
                           std::make_move_iterator(es.end()));
}

void add(SpanEvent&& e) {
    auto& s = session();
    std::lock_guard lk(s.m);
    if (on()) s.rec.spans.push_back(std::move(e));
}

void add(ProcessEvent&& e) {
    auto& s = session();
    std::lock_guard lk(s.m);
    if (!on()) return;
    // A pool worker is also a Process: its two records make one track.
    for (auto& p : s.rec.processes)
        if (p.pid == e.pid && p.how.empty()) {
            if (e.supervisor || p.supervisor) return;
            p.name = std::move(e.name);
            if (!e.method.empty()) p.method = std::move(e.method);
            p.start = std::min(p.start, e.start);
            return;
        }
    s.rec.processes.push_back(std::move(e));
}

void add(const BatchEvent& e) {
    auto& s = session();
    std::lock_guard lk(s.m);
    if (on()) s.rec.batches.push_back(e);
}

bool process_exited(pid_t pid, std::uint64_t t, const std::string& how) {
    auto& s = session();
    std::lock_guard lk(s.m);
    bool set = false;
    for (auto& p : s.rec.processes)
        if (p.pid == pid && p.how.empty()) {
            p.exit = t;
            p.how = how;
            set = true;
        }
    return set;
}

void add_dropped(std::uint64_t n) {
    auto& s = session();
    std::lock_guard lk(s.m);
    s.rec.dropped += n;
}

void set_provider(Provider p) noexcept { session().provider.store(p, std::memory_order_release); }

void start_environment(const char* json, const char* html) {
    auto& s = session();
    if (json && *json) {
        s.env_json = json;
        begin_user(&s.env_json);
    }
    if (html && *html) {
        s.env_html = html;
        begin_user(nullptr);
    }
}

void finish_environment() {
    auto& s = session();
    if (!s.env_json.empty()) {
        const std::string path = std::exchange(s.env_json, {});
        if (!end_user(true, path)) complain(path);
    }
    if (!s.env_html.empty()) {
        const std::string path = std::exchange(s.env_html, {});
        if (!end_user(false, path)) complain(path);
    }
}

}  // namespace mp::detail::trace

namespace mp::trace {

void start(const std::string& path) { detail::trace::begin_user(&path); }

void stop() {
    std::string path;
    {
        auto& s = detail::trace::session();
        std::lock_guard lk(s.m);
        path = s.json;
    }
    if (path.empty()) return;
    if (!detail::trace::end_user(true, path)) detail::trace::complain(path);
}

bool active() noexcept { return detail::trace::on(); }

}  // namespace mp::trace

namespace mp {

performance_report::performance_report(std::string path) : path_(std::move(path)) {
    detail::trace::begin_user(nullptr);
}

performance_report::~performance_report() {
    try {
        if (!detail::trace::end_user(false, path_)) detail::trace::complain(path_);
    } catch (...) {
        detail::trace::complain(path_);
    }
}

}  // namespace mp
