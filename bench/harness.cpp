// The registry, and the command line of mp_bench that bench/run.py drives:
//
//   mp_bench --list                                  rows and implementations, as JSON
//   mp_bench --row NAME --impl IMPL [--iters N] [--warmup W]
//                                                    one run; one JSON line on stdout
//   mp_bench NAME [IMPL]                             by hand: one run of each implementation
//                                                    at the row's probe size, "name impl value unit"
//
// main() lives here so that every row file only registers; mp::init comes first, as the
// library requires of every program that may start processes.
#include "harness.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "multiproc/bootstrap.hpp"

namespace bench {
namespace {

struct Registry {
    std::vector<RowEntry> rows;
    // Implementations may register before their row (another file's static initialisers).
    std::vector<std::tuple<std::string, std::string, Workload>> pending;
};

Registry& raw_registry() {
    static Registry r;
    return r;
}

RowEntry* find_row(std::string_view name) {
    for (auto& e : raw_registry().rows)
        if (e.spec.name == name) return &e;
    return nullptr;
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

const char* kind_name(Kind k) { return k == Kind::latency ? "latency" : "throughput"; }

const char* direction_name(Goal::Direction d) {
    switch (d) {
        case Goal::at_most: return "at_most";
        case Goal::at_least: return "at_least";
        case Goal::none: break;
    }
    return "none";
}

void print_list() {
    std::string out = "{\"rows\": [";
    bool first = true;
    for (const auto& e : registry()) {
        const RowSpec& s = e.spec;
        if (!first) out += ",";
        first = false;
        out += "\n  {\"name\": " + json_string(s.name) + ", \"what\": " + json_string(s.what) +
               ", \"kind\": \"" + kind_name(s.kind) + "\", \"unit\": " + json_string(s.unit) +
               ", \"scale\": " + std::to_string(s.scale) +
               ", \"bytes_per_iter\": " + std::to_string(s.bytes_per_iter) +
               ", \"probe_iters\": " + std::to_string(s.probe_iters) +
               ", \"goal\": {\"versus\": " + json_string(s.goal.versus) + ", \"direction\": \"" +
               direction_name(s.goal.direction) + "\", \"bound\": " + std::to_string(s.goal.bound) +
               "}, \"impls\": [";
        for (std::size_t i = 0; i < e.impls.size(); ++i)
            out += (i ? ", " : "") + json_string(e.impls[i].first);
        out += "]}";
    }
    out += "\n]}\n";
    std::fputs(out.c_str(), stdout);
}

Workload find_impl(const RowEntry& e, std::string_view impl) {
    for (const auto& [name, w] : e.impls)
        if (name == impl) return w;
    return nullptr;
}

std::uint64_t parse_count(const char* s, const char* flag) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') fail(std::string(flag) + ": not a count: " + s);
    return v;
}

double headline(const RowSpec& s, double seconds, std::uint64_t iters) {
    if (s.kind == Kind::latency) return seconds / static_cast<double>(iters) * s.scale;
    return static_cast<double>(iters) / seconds;
}

int usage() {
    std::fputs("usage: mp_bench --list\n"
               "       mp_bench --row NAME --impl IMPL [--iters N] [--warmup W]\n"
               "       mp_bench NAME [IMPL]\n"
               "Normally driven by bench/run.py, which runs every implementation side by side.\n",
               stderr);
    return 2;
}

int run_main(int argc, char** argv) {
    std::string row, impl;
    std::uint64_t iters = 0, warmup = 0;
    bool have_warmup = false, list = false, json = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](const char* flag) -> const char* {
            if (i + 1 >= argc) fail(std::string(flag) + " needs a value");
            return argv[++i];
        };
        if (a == "--list") list = true;
        else if (a == "--row") {
            row = value("--row");
            json = true;
        } else if (a == "--impl") impl = value("--impl");
        else if (a == "--iters") iters = parse_count(value("--iters"), "--iters");
        else if (a == "--warmup") {
            warmup = parse_count(value("--warmup"), "--warmup");
            have_warmup = true;
        } else if (a == "-h" || a == "--help") return usage();
        else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return usage();
        } else positional.emplace_back(a);
    }
    if (list) {
        print_list();
        return 0;
    }
    if (!json) {
        if (positional.empty() || positional.size() > 2) return usage();
        row = positional[0];
        if (positional.size() == 2) impl = positional[1];
    }
    const RowEntry* e = find_row(row);
    if (!e) fail("no such row: " + row + " (mp_bench --list)");
    if (json && impl.empty()) fail("--row needs --impl");
    if (!impl.empty() && !find_impl(*e, impl))
        fail("row " + row + " has no implementation " + impl);
    if (iters == 0) iters = e->spec.probe_iters;
    if (!have_warmup) warmup = iters / 10 + 1;
    for (const auto& [name, w] : e->impls) {
        if (!impl.empty() && name != impl) continue;
        double seconds = w(Run{iters, warmup});
        if (json) {
            std::printf(
                "{\"row\": %s, \"impl\": %s, \"iters\": %llu, \"warmup\": %llu, \"seconds\": %.9f}\n",
                json_string(row).c_str(), json_string(name).c_str(),
                static_cast<unsigned long long>(iters), static_cast<unsigned long long>(warmup),
                seconds);
        } else {
            std::printf("%s %s %.4g %s\n", row.c_str(), name.c_str(),
                        headline(e->spec, seconds, iters), e->spec.unit.c_str());
        }
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace

bool add_row(RowSpec spec) {
    auto& r = raw_registry();
    if (find_row(spec.name)) {
        std::fprintf(stderr, "mp_bench: row %s registered twice\n", spec.name.c_str());
        std::abort();
    }
    r.rows.push_back(RowEntry{std::move(spec), {}});
    return true;
}

bool add_impl(std::string row, std::string impl, Workload workload) {
    raw_registry().pending.emplace_back(std::move(row), std::move(impl), workload);
    return true;
}

std::vector<RowEntry>& registry() {
    auto& r = raw_registry();
    for (auto& [row, impl, w] : r.pending) {
        RowEntry* e = find_row(row);
        if (!e) {
            std::fprintf(stderr, "mp_bench: implementation %s of unknown row %s\n", impl.c_str(),
                         row.c_str());
            std::abort();
        }
        if (find_impl(*e, impl)) {
            std::fprintf(stderr, "mp_bench: %s/%s registered twice\n", row.c_str(), impl.c_str());
            std::abort();
        }
        e->impls.emplace_back(std::move(impl), w);
    }
    r.pending.clear();
    return r.rows;
}

void fail_errno(const char* what) { fail(std::string(what) + ": " + std::strerror(errno)); }

void fail(const std::string& message) { throw std::runtime_error(message); }

}  // namespace bench

int main(int argc, char** argv) {
    mp::init(argc, argv);
    try {
        bench::registry();  // joins implementations to their rows
        return bench::run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mp_bench: %s\n", e.what());
        return 1;
    }
}
