// The performance report: one self-contained HTML file (no network access, no external script)
// made of the page (trace_report_page.hpp) and the recording's data as JSON in a
// <script type="application/json"> element. What the page draws is aggregated here where it
// grows with the run (histograms, batch sizes and bytes over time at most kSeriesPoints points);
// the task stream keeps every task, delta-encoded, with exact counts.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <unordered_map>
#include <utility>

#include "trace_hook.hpp"
#include "trace_report_page.hpp"

namespace mp::detail::trace {

namespace {

constexpr std::size_t kSeriesPoints = 400;
constexpr std::size_t kListed = 500;  // failures and retries listed one by one

std::string n(std::uint64_t v) { return std::to_string(v); }
std::string n(std::int64_t v) { return std::to_string(v); }

class Data {
public:
    explicit Data(const Recording& r) : r_(r) {}
    std::int64_t us(std::uint64_t t) const {
        return t >= r_.t0 ? static_cast<std::int64_t>((t - r_.t0) / 1000)
                          : -static_cast<std::int64_t>((r_.t0 - t) / 1000);
    }
    std::string json();

private:
    std::string workers();
    std::string tasks();
    std::string histograms();
    std::string batches();
    std::string bytes();
    std::string failures();
    std::string retries();
    int fn_index(const std::string& f) {
        auto [it, added] = fns_.try_emplace(f, static_cast<int>(fn_names_.size()));
        if (added) fn_names_.push_back(f);
        return it->second;
    }

    const Recording& r_;
    std::vector<pid_t> pids_;  // the workers, in the order of their tracks
    std::unordered_map<std::string, int> fns_;
    std::vector<std::string> fn_names_;
    std::deque<ProcessEvent> extra_;  // workers whose start was not recorded
};

std::string Data::workers() {
    std::map<pid_t, std::pair<std::uint64_t, std::size_t>> busy;  // pid -> (ns, tasks)
    for (const auto& t : r_.tasks) {
        auto& b = busy[t.pid];
        b.first += t.end > t.start ? t.end - t.start : 0;
        ++b.second;
    }
    std::vector<const ProcessEvent*> ws;
    for (const auto& p : r_.processes)
        if (!p.supervisor) ws.push_back(&p);
    for (const auto& entry : busy) {  // a worker whose start the recording did not see
        const pid_t pid = entry.first;
        if (std::none_of(ws.begin(), ws.end(), [&](auto* p) { return p->pid == pid; })) {
            extra_.push_back(ProcessEvent{pid, "worker", "", r_.t0, r_.t0, 0, "", false});
            ws.push_back(&extra_.back());
        }
    }
    std::string s = "[";
    for (const auto* p : ws) {
        pids_.push_back(p->pid);
        const auto b = busy[p->pid];
        const std::uint64_t from = std::max(p->started ? p->started : p->start, r_.t0);
        const std::uint64_t to = p->exit ? p->exit : r_.t1;
        if (s.size() > 1) s += ",";
        s += "{\"pid\":" + n(static_cast<std::uint64_t>(p->pid)) +
             ",\"name\":" + json_string(p->name) + ",\"method\":" + json_string(p->method) +
             ",\"start_us\":" + n(us(from)) + ",\"end_us\":" + n(us(to)) +
             ",\"latency_us\":" + n((p->started - p->start) / 1000) +
             ",\"how\":" + json_string(p->how) + ",\"busy_us\":" + n(b.first / 1000) +
             ",\"tasks\":" + n(static_cast<std::uint64_t>(b.second)) + "}";
    }
    return s + "]";
}

// Columns of the task stream, ordered by worker then start: w (track index), s (start, us,
// relative to the previous task of the same track), d (duration, us), f (function), o (outcome).
std::string Data::tasks() {
    std::vector<const TaskEvent*> ts;
    ts.reserve(r_.tasks.size());
    for (const auto& t : r_.tasks) ts.push_back(&t);
    std::unordered_map<pid_t, int> track;
    for (std::size_t i = 0; i < pids_.size(); ++i) track[pids_[i]] = static_cast<int>(i);
    std::stable_sort(ts.begin(), ts.end(), [&](auto* a, auto* b) {
        return track[a->pid] != track[b->pid] ? track[a->pid] < track[b->pid] : a->start < b->start;
    });
    std::string w, s, d, f, o;
    int prev_track = -1;
    std::int64_t prev = 0;
    for (const auto* t : ts) {
        const int k = track[t->pid];
        const std::int64_t start = us(t->start);
        if (k != prev_track) prev = 0;
        const char* sep = w.empty() ? "" : ",";
        w += sep + std::to_string(k);
        s += sep + n(start - prev);
        d += sep + n(static_cast<std::uint64_t>(us(t->end) - start));
        f += sep + std::to_string(fn_index(t->fn));
        o += sep + std::to_string(static_cast<int>(t->outcome));
        prev_track = k;
        prev = start;
    }
    return "{\"w\":[" + w + "],\"s\":[" + s + "],\"d\":[" + d + "],\"f\":[" + f + "],\"o\":[" + o +
           "]}";
}

// Per function: counts of durations in bins of a factor of 2 (from 1 us).
std::string Data::histograms() {
    std::map<std::string, std::vector<std::uint64_t>> bins;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> sums;  // (count, ns)
    for (const auto& t : r_.tasks) {
        const std::uint64_t ns = t.end > t.start ? t.end - t.start : 0;
        const auto bin = static_cast<std::size_t>(ns < 1000 ? 0 : std::log2(ns / 1000.0) + 1);
        auto& b = bins[t.fn];
        if (b.size() <= bin) b.resize(bin + 1);
        ++b[bin];
        ++sums[t.fn].first;
        sums[t.fn].second += ns;
    }
    std::string s = "[";
    for (const auto& [fn, b] : bins) {
        if (s.size() > 1) s += ",";
        s += "{\"fn\":" + json_string(fn) + ",\"n\":" + n(sums[fn].first) + ",\"mean_us\":" +
             n(sums[fn].second / 1000 / std::max<std::uint64_t>(1, sums[fn].first)) +
             ",\"counts\":[";
        for (std::size_t i = 0; i < b.size(); ++i) s += (i ? "," : "") + n(b[i]);
        s += "]}";
    }
    return s + "]";
}

// [t_us, mean tasks, max tasks, batches] per time bin.
std::string Data::batches() {
    if (r_.batches.empty()) return "[]";
    const std::uint64_t span = std::max<std::uint64_t>(1, r_.t1 - r_.t0);
    std::vector<std::array<std::uint64_t, 3>> bin(kSeriesPoints);  // sum, max, count
    for (const auto& b : r_.batches) {
        const auto i =
            std::min<std::size_t>(kSeriesPoints - 1,
                                  b.t > r_.t0 ? (b.t - r_.t0) * kSeriesPoints / span : 0);
        bin[i][0] += b.tasks;
        bin[i][1] = std::max<std::uint64_t>(bin[i][1], b.tasks);
        ++bin[i][2];
    }
    std::string s = "[";
    for (std::size_t i = 0; i < bin.size(); ++i) {
        if (!bin[i][2]) continue;
        if (s.size() > 1) s += ",";
        s += "[" + n(span * i / kSeriesPoints / 1000) + "," + n(bin[i][0] / bin[i][2]) + "," +
             n(bin[i][1]) + "," + n(bin[i][2]) + "]";
    }
    return s + "]";
}

// Totals, then [t_us, cumulative bytes in, cumulative bytes out] by task end.
std::string Data::bytes() {
    const std::uint64_t span = std::max<std::uint64_t>(1, r_.t1 - r_.t0);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> bin(kSeriesPoints);
    std::uint64_t in = 0, out = 0;
    for (const auto& t : r_.tasks) {
        const auto i =
            std::min<std::size_t>(kSeriesPoints - 1,
                                  t.end > r_.t0 ? (t.end - r_.t0) * kSeriesPoints / span : 0);
        bin[i].first += t.bytes_in;
        bin[i].second += t.bytes_out;
        in += t.bytes_in;
        out += t.bytes_out;
    }
    std::string s = "{\"in\":" + n(in) + ",\"out\":" + n(out) + ",\"series\":[";
    std::uint64_t ci = 0, co = 0;
    for (std::size_t i = 0; i < bin.size(); ++i) {
        ci += bin[i].first;
        co += bin[i].second;
        s += (i ? ",[" : "[") + n(span * (i + 1) / kSeriesPoints / 1000) + "," + n(ci) + "," +
             n(co) + "]";
    }
    return s + "]}";
}

std::string Data::failures() {
    std::string s = "[";
    std::size_t listed = 0;
    for (const auto& t : r_.tasks) {
        if (t.outcome == Outcome::ok || listed++ >= kListed) continue;
        if (s.size() > 1) s += ",";
        s += "{\"pid\":" + n(static_cast<std::uint64_t>(t.pid)) + ",\"task\":" + n(t.task) +
             ",\"fn\":" + json_string(t.fn) + ",\"kind\":\"" + outcome_name(t.outcome) +
             "\",\"detail\":" + json_string(t.detail) + ",\"t_us\":" + n(us(t.start)) +
             ",\"attempt\":" + n(std::uint64_t{t.attempt}) + "}";
    }
    return s + "]";
}

std::string Data::retries() {
    std::string s = "[";
    std::size_t listed = 0;
    for (const auto& e : r_.spans) {
        if ((e.cat != "retry" && e.cat != "quarantine") || listed++ >= kListed) continue;
        if (s.size() > 1) s += ",";
        s += "{\"what\":" + json_string(e.name) + ",\"kind\":" + json_string(e.cat) +
             ",\"t_us\":" + n(us(e.start)) + "," + e.args + "}";
    }
    return s + "]";
}

std::string Data::json() {
    std::uint64_t count[3] = {0, 0, 0};
    for (const auto& t : r_.tasks) ++count[static_cast<int>(t.outcome)];
    std::uint64_t retried = 0, quarantined = 0;
    for (const auto& e : r_.spans) {
        retried += e.cat == "retry";
        quarantined += e.cat == "quarantine";
    }
    std::string w = workers();
    std::string t = tasks();
    std::string fns = "[";
    for (std::size_t i = 0; i < fn_names_.size(); ++i)
        fns += (i ? "," : "") + json_string(fn_names_[i]);
    return "{\"span_us\":" + n(us(r_.t1)) + ",\"workers\":" + w + ",\"fns\":" + fns +
           "],\"tasks\":" + t + ",\"counts\":{\"tasks\":" + n(r_.tasks.size()) +
           ",\"ok\":" + n(count[0]) + ",\"exception\":" + n(count[1]) + ",\"died\":" + n(count[2]) +
           ",\"retried\":" + n(retried) + ",\"quarantined\":" + n(quarantined) +
           ",\"dropped\":" + n(r_.dropped) + ",\"batches\":" + n(r_.batches.size()) +
           "},\"hist\":" + histograms() + ",\"batches\":" + batches() + ",\"bytes\":" + bytes() +
           ",\"failures\":" + failures() + ",\"retries\":" + retries() + "}";
}

}  // namespace

bool write_report(const Recording& r, const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    const std::string data = Data(r).json();
    std::fputs(report_page_head, f);
    std::fputs(data.c_str(), f);
    std::fputs(report_page_tail, f);
    const bool ok = std::ferror(f) == 0;
    return std::fclose(f) == 0 && ok;
}

}  // namespace mp::detail::trace
