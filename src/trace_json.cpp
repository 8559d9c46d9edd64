// The timeline as Chrome Trace Event JSON (the format chrome://tracing and Perfetto read; the
// JSON Object Format of the Trace Event Format document): one process track per worker and one
// for the supervisor; times in microseconds from the start of the recording. The events and
// their arguments are listed in docs/observability.md.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <utility>

#include "trace_hook.hpp"

namespace mp::detail::trace {

namespace {

struct File {
    std::FILE* f;
    ~File() {
        if (f) std::fclose(f);
    }
};

class Writer {
public:
    Writer(std::FILE* f, std::uint64_t t0) : f_(f), t0_(t0) {}
    // Starts an event: its phase, name, category, track and time.
    void begin(char ph, const std::string& name, const char* cat, pid_t pid, std::uint64_t t) {
        std::fputs(first_ ? "\n" : ",\n", f_);
        first_ = false;
        std::fprintf(f_,
                     "{\"ph\":\"%c\",\"name\":%s,\"cat\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f",
                     ph, json_string(name).c_str(), cat, static_cast<int>(pid),
                     static_cast<int>(pid), us(t));
    }
    void raw(const std::string& s) { std::fputs(s.c_str(), f_); }
    void end() { std::fputs("}", f_); }
    [[nodiscard]] double us(std::uint64_t t) const {
        return t >= t0_ ? static_cast<double>(t - t0_) / 1e3 : -static_cast<double>(t0_ - t) / 1e3;
    }
    void metadata(pid_t pid, const char* what, const std::string& args) {
        begin('M', what, "__metadata", pid, t0_);
        raw(",\"args\":{" + args + "}");
        end();
    }

private:
    std::FILE* f_;
    std::uint64_t t0_;
    bool first_ = true;
};

std::string num(std::uint64_t v) { return std::to_string(v); }

void write_processes(Writer& w, const Recording& r) {
    int order = 1;
    for (const auto& p : r.processes) {
        const std::string label = p.supervisor ? "supervisor (pid " + num(p.pid) + ")"
                                               : p.name + " (pid " + num(p.pid) + ")";
        w.metadata(p.pid, "process_name", "\"name\":" + json_string(label));
        w.metadata(p.pid, "process_sort_index",
                   "\"sort_index\":" + std::to_string(p.supervisor ? 0 : order++));
        w.metadata(p.pid, "thread_name",
                   "\"name\":" + json_string(p.supervisor ? "supervisor" : "tasks"));
        if (p.supervisor || !p.start) continue;
        for (const auto& q : r.processes)
            if (q.supervisor) {
                w.begin('X', "start " + p.name, "process", q.pid, p.start);
                w.raw(",\"dur\":" + std::to_string(w.us(p.started) - w.us(p.start)) +
                      ",\"args\":{\"pid\":" + num(p.pid) + ",\"method\":" + json_string(p.method) +
                      ",\"start_latency_us\":" + std::to_string(w.us(p.started) - w.us(p.start)) +
                      "}");
                w.end();
                break;
            }
    }
}

void write_tasks(Writer& w, const Recording& r) {
    for (const auto& t : r.tasks) {
        w.begin('X', t.fn, "task", t.pid, t.start);
        std::string a = ",\"dur\":" + std::to_string(w.us(t.end) - w.us(t.start)) +
                        ",\"args\":{\"task\":" + num(t.task) + ",\"batch\":" + num(t.batch) +
                        ",\"attempt\":" + num(t.attempt) + ",\"bytes_in\":" + num(t.bytes_in) +
                        ",\"bytes_out\":" + num(t.bytes_out) + ",\"outcome\":\"" +
                        outcome_name(t.outcome) + "\"";
        if (t.submit) a += ",\"submit_us\":" + std::to_string(w.us(t.submit));
        if (!t.detail.empty()) a += ",\"detail\":" + json_string(t.detail);
        w.raw(a + "}");
        w.end();
    }
}

void write_others(Writer& w, const Recording& r) {
    pid_t sup = 0;
    for (const auto& p : r.processes)
        if (p.supervisor) sup = p.pid;
    for (const auto& b : r.batches) {
        w.begin('i', "batch to " + num(b.pid), "batch", sup, b.t);
        w.raw(",\"s\":\"t\",\"args\":{\"worker\":" + num(b.pid) + ",\"seq\":" + num(b.seq) +
              ",\"tasks\":" + num(b.tasks) + ",\"bytes\":" + num(b.bytes) + "}");
        w.end();
    }
    for (const auto& s : r.spans) {
        w.begin(s.end > s.start ? 'X' : 'i', s.name, s.cat.c_str(), s.pid, s.start);
        if (s.end > s.start) w.raw(",\"dur\":" + std::to_string(w.us(s.end) - w.us(s.start)));
        else w.raw(",\"s\":\"t\"");
        w.raw(",\"args\":{" + s.args + "}");
        w.end();
    }
}

}  // namespace

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '<') {
            out += "\\u003c";  // so that the same text is safe inside an HTML <script>
        } else if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

const char* outcome_name(Outcome o) noexcept {
    switch (o) {
        case Outcome::ok: return "ok";
        case Outcome::exception: return "exception";
        case Outcome::died: return "died";
    }
    return "?";
}

bool write_json(const Recording& r, const std::string& path) {
    File out{std::fopen(path.c_str(), "w")};
    if (!out.f) return false;
    Writer w(out.f, r.t0);
    std::fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"clock\":\"CLOCK_MONOTONIC\",", out.f);
    std::fprintf(out.f, "\"t0_ns\":%" PRIu64 ",\"dropped_tasks\":%" PRIu64 "},\"traceEvents\":[",
                 r.t0, r.dropped);
    write_processes(w, r);
    write_tasks(w, r);
    write_others(w, r);
    std::fputs("\n]}\n", out.f);
    const bool ok = std::ferror(out.f) == 0;
    return std::fclose(std::exchange(out.f, nullptr)) == 0 && ok;
}

}  // namespace mp::detail::trace
