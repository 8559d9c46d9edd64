// The engine's side of the trace hook: the worker's recorder (TaskTracer) and the supervisor's
// registry of live workers' rings. Layout and roles: worker_trace.hpp.
#include "worker_trace.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "demangle.hpp"
#include "multiproc/callable.hpp"
#include "multiproc/context.hpp"
#include "multiproc/detail/task_protocol.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/process.hpp"
#include "sys/process.hpp"
#include "sys/symbols.hpp"
#include "task_name.hpp"
#include "worker_lifecycle.hpp"

namespace mp::detail {

namespace wire {

namespace {

// The template argument F of thunk<F, ...> / chunk_thunk<F, ...>: the target's type, which for
// a lambda or a function object is also its name (the whole symbol when it has none).
std::string first_template_arg(const std::string& s) {
    std::string type = thunk_target_type(s);
    return type.empty() ? s : type;
}

// "square(int)" -> "square": the parameter list adds nothing on a timeline.
std::string without_parameters(std::string s) {
    if (s.empty() || s.back() != ')') return s;
    int depth = 0;
    for (std::size_t i = s.size(); i-- > 0;) {
        if (s[i] == ')') ++depth;
        else if (s[i] == '(' && --depth == 0) return i ? s.substr(0, i) : s;
    }
    return s;
}

// The function's name; a function of internal linkage (static, anonymous namespace) is not in
// the dynamic symbol table: its offset in its module stands for it.
std::string symbol_name(const void* addr) {
    if (const char* s = sys::symbol_at(addr)) return demangle(s);
    const sys::CodeLocation at = sys::locate_code(addr);
    char buf[32];
    std::snprintf(buf, sizeof buf, "+0x%zx",
                  static_cast<std::size_t>(static_cast<const char*>(addr) -
                                           static_cast<const char*>(at.file_base)));
    std::string file = at.file ? at.file : "?";
    return "function " + file.substr(file.rfind('/') + 1) + buf;
}

}  // namespace

TraceHeader TaskTracer::off_{};

void TaskTracer::attach(void* slot, std::size_t bytes) noexcept {
    if (bytes < kSlotWithTraceBytes) return;
    auto* base = static_cast<std::byte*>(slot) + kTraceOffset;
    hdr_ = reinterpret_cast<TraceHeader*>(base);
    ring_ = reinterpret_cast<TraceRecord*>(base + sizeof(TraceHeader));
}

std::uint16_t TaskTracer::intern(const std::string& name) noexcept {
    const std::uint32_t n = hdr_->names.load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < n; ++i)
        if (std::strncmp(hdr_->name[i], name.c_str(), kTraceNameBytes - 1) == 0)
            return static_cast<std::uint16_t>(i);
    if (n >= kTraceNames) return 0;
    const std::size_t len = std::min(name.size(), kTraceNameBytes - 1);
    std::memcpy(hdr_->name[n], name.data(), len);
    hdr_->name[n][len] = '\0';
    hdr_->names.store(n + 1, std::memory_order_release);
    return static_cast<std::uint16_t>(n);
}

// The function a call runs: the target's symbol for a function pointer (resolved as the thunk
// is about to resolve it), else the target's type as the thunk's name spells it.
std::uint16_t TaskTracer::function_name(std::span<const std::byte> call) noexcept {
    try {
        Decoder d(call);
        const auto* thunk = reinterpret_cast<const void*>(open_package(d));
        // Names are looked up once per thunk and per target: dladdr and the demangler are slow.
        static std::unordered_map<const void*, std::string> thunk_types;
        static std::unordered_map<const void*, std::uint16_t> ids;
        auto t = thunk_types.find(thunk);
        if (t == thunk_types.end())
            t = thunk_types.emplace(thunk, first_template_arg(symbol_name(thunk))).first;
        const void* key = thunk;
        const bool by_target = t->second.find("(*)") != std::string::npos;
        if (by_target)
            key = reinterpret_cast<const void*>(resolve_code_address(d, EntryKind::function));
        if (auto id = ids.find(key); id != ids.end()) return id->second;
        const std::string name = by_target ? without_parameters(symbol_name(key)) : t->second;
        return ids.emplace(key, intern(name.empty() ? "task" : name)).first->second;
    } catch (...) {
        return intern("task");
    }
}

void TaskTracer::begin(std::uint64_t id, std::span<const std::byte> call) noexcept {
    cur_ = TraceRecord{};
    cur_.task = id;
    cur_.batch = batch_;
    cur_.bytes_in = call.size();
    cur_.fn = function_name(call);
    hdr_->cur_fn.store(cur_.fn, std::memory_order_relaxed);
    cur_.start = trace::now_ns();
    hdr_->cur_start.store(cur_.start, std::memory_order_relaxed);
    hdr_->cur_task.store(id, std::memory_order_release);
}

void TaskTracer::failed() noexcept {
    try {
        cur_.exc = static_cast<std::uint16_t>(1 + intern(current_exception_type_name()));
    } catch (...) {
        cur_.exc = 1;
    }
}

// The type of the exception a result carries (status error: the thunk caught it).
void TaskTracer::note_error(std::span<const std::byte> result) noexcept {
    try {
        Decoder d(result.subspan(1));
        std::rethrow_exception(decode_exception(d));
    } catch (const RemoteError& e) {
        try {
            cur_.exc = static_cast<std::uint16_t>(1 + intern(e.type_name()));
        } catch (...) {
            cur_.exc = 1;
        }
    } catch (...) {
        failed();
    }
}

void TaskTracer::end(std::span<const std::byte> result) noexcept {
    cur_.end = trace::now_ns();
    cur_.bytes_out = result.size();
    if (!cur_.exc && !result.empty() && result[0] == static_cast<std::byte>(TaskStatus::error))
        note_error(result);
    const std::uint64_t at = hdr_->written.load(std::memory_order_relaxed);
    if (at - hdr_->read.load(std::memory_order_acquire) >= kTraceRecords) {
        hdr_->dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
        ring_[at % kTraceRecords] = cur_;
        hdr_->written.store(at + 1, std::memory_order_release);
    }
    hdr_->cur_task.store(0, std::memory_order_release);
}

TaskTracer& task_tracer() noexcept {
    static TaskTracer t;
    return t;
}

}  // namespace wire

// --- the supervisor's side ------------------------------------------------------------------

namespace {

struct Live {
    pid_t pid = 0;
    const void* engine = nullptr;
    wire::TraceHeader* hdr = nullptr;
    std::uint32_t batches = 0;
};

struct Pending {
    std::uint64_t submit = 0;
    std::uint32_t attempt = 1;
};

struct Key {
    const void* engine;
    std::uint64_t id;
    bool operator==(const Key&) const = default;
};
struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
        return std::hash<const void*>()(k.engine) ^ (k.id * 0x9e3779b97f4a7c15ULL);
    }
};

struct Registry {
    std::mutex m;
    std::unordered_map<const void*, Live> live;  // by the worker's slot
    std::unordered_map<Key, Pending, KeyHash> pending;
};

Registry& registry() {
    static Registry* r = new Registry;  // never destroyed: used from atexit
    return *r;
}

std::string name_of(const wire::TraceHeader& h, std::uint32_t i) {
    if (i >= h.names.load(std::memory_order_acquire)) return "?";
    return std::string(h.name[i], strnlen(h.name[i], wire::kTraceNameBytes));
}

// Turns the records a worker wrote since the last read into events. Under the registry's lock.
void drain(Registry& r, Live& l) {
    auto& h = *l.hdr;
    const std::uint64_t end = h.written.load(std::memory_order_acquire);
    std::uint64_t at = h.read.load(std::memory_order_relaxed);
    const auto* ring =
        reinterpret_cast<const wire::TraceRecord*>(reinterpret_cast<const std::byte*>(&h) +
                                                   sizeof(wire::TraceHeader));
    std::vector<trace::TaskEvent> events;
    events.reserve(static_cast<std::size_t>(end - at));
    for (; at < end; ++at) {
        const wire::TraceRecord rec = ring[at % wire::kTraceRecords];
        trace::TaskEvent e;
        e.pid = l.pid;
        e.task = rec.task;
        e.batch = rec.batch;
        e.start = rec.start;
        e.end = rec.end;
        e.bytes_in = rec.bytes_in;
        e.bytes_out = rec.bytes_out;
        e.fn = name_of(h, rec.fn);
        if (rec.exc) {
            e.outcome = trace::Outcome::exception;
            e.detail = name_of(h, rec.exc - 1u);
        }
        if (auto it = r.pending.find(Key{l.engine, rec.task}); it != r.pending.end()) {
            e.submit = it->second.submit;
            e.attempt = it->second.attempt;
            r.pending.erase(it);
        }
        events.push_back(std::move(e));
    }
    h.read.store(at, std::memory_order_release);
    if (!events.empty()) trace::add(std::move(events));
    if (const auto lost = h.dropped.exchange(0, std::memory_order_relaxed))
        trace::add_dropped(lost);
}

void add_process(const Live& l, const std::string& name, const std::string& method,
                 std::uint64_t t0) {
    trace::ProcessEvent p;
    p.pid = l.pid;
    p.name = name;
    p.method = method;
    p.start = t0;
    p.started = trace::now_ns();
    trace::add(std::move(p));
}

void provide(trace::Ask what) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    if (what == trace::Ask::start) {
        trace::ProcessEvent sup;
        sup.pid = sys::current_pid();
        sup.name = "supervisor";
        sup.supervisor = true;
        sup.start = sup.started = trace::now_ns();
        trace::add(std::move(sup));
        for (auto& [slot, l] : r.live) {
            l.hdr->read.store(l.hdr->written.load(std::memory_order_acquire));
            l.hdr->on.store(1, std::memory_order_relaxed);
            add_process(l, "worker " + std::to_string(l.pid), "", trace::now_ns());
        }
    } else if (what == trace::Ask::drain) {
        for (auto& [slot, l] : r.live) drain(r, l);
    } else {
        for (auto& [slot, l] : r.live) l.hdr->on.store(0, std::memory_order_relaxed);
        r.pending.clear();
    }
}

const bool g_provider_set = (trace::set_provider(&provide), true);

pid_t g_env_owner = 0;

void finish_env_at_exit() {
    // A forked child that exits through exit() runs the parent's atexit handlers: only the
    // process that started the recording writes the files.
    if (sys::current_pid() == g_env_owner) trace::finish_environment();
}

}  // namespace

void trace_engine_started() {
    static std::once_flag once;
    std::call_once(once, [] {
        static_cast<void>(g_provider_set);
        const char* json = std::getenv("MP_TRACE");
        const char* html = std::getenv("MP_REPORT");
        if ((!json || !*json) && (!html || !*html)) return;
        // A child of multiproc inherits the environment: the files are its parent's to write.
        if (parent_process()) return;
        g_env_owner = sys::current_pid();
        trace::start_environment(json, html);
        std::atexit(&finish_env_at_exit);
    });
}

void trace_worker_started(const Worker& w, const EngineOptions& opts, std::size_t number,
                          std::uint64_t t0) {
    auto* hdr = reinterpret_cast<wire::TraceHeader*>(w.slot_map.data() + wire::kTraceOffset);
    Live l{w.pid, &opts, hdr, 0};
    auto& r = registry();
    std::lock_guard lk(r.m);
    if (trace::on()) {
        hdr->on.store(1, std::memory_order_relaxed);
        std::string method;
        try {
            method = opts.context ? opts.context->get_start_method()
                                  : get_start_method(true).value_or("");
        } catch (...) {
        }
        add_process(l, "PoolWorker-" + std::to_string(number), method, t0);
    }
    r.live[w.slot] = l;
}

void trace_worker_gone(const Worker& w, const std::string& how) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    auto it = r.live.find(w.slot);
    if (it == r.live.end()) return;
    Live l = it->second;
    r.live.erase(it);
    if (!trace::on()) return;
    drain(r, l);
    const std::uint64_t now = trace::now_ns();
    if (const auto task = l.hdr->cur_task.load(std::memory_order_acquire)) {
        trace::TaskEvent e;
        e.pid = l.pid;
        e.task = task;
        e.start = l.hdr->cur_start.load(std::memory_order_relaxed);
        e.end = now;
        e.fn = name_of(*l.hdr, l.hdr->cur_fn.load(std::memory_order_relaxed));
        e.outcome = trace::Outcome::died;
        e.detail = how;
        if (auto p = r.pending.find(Key{l.engine, task}); p != r.pending.end()) {
            e.submit = p->second.submit;
            e.attempt = p->second.attempt;
        }
        trace::add(std::move(e));
    }
    trace::process_exited(l.pid, now, how);
    trace::add(trace::SpanEvent{sys::current_pid(), "worker " + std::to_string(l.pid) + " " + how,
                                "process", now, now, "\"pid\":" + std::to_string(l.pid)});
}

void trace_task_pulled(const void* engine, std::uint64_t id) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    r.pending[Key{engine, id}] = Pending{trace::now_ns(), 1};
}

void trace_batch_sent(const Worker& w, std::size_t tasks, std::size_t bytes) {
    auto& r = registry();
    std::uint32_t seq = 0;
    {
        std::lock_guard lk(r.m);
        auto it = r.live.find(w.slot);
        if (it != r.live.end()) seq = ++it->second.batches;
    }
    const std::uint64_t t = trace::now_ns();
    trace::add(trace::BatchEvent{w.pid, seq, static_cast<std::uint32_t>(tasks), bytes, t});
}

void trace_results(const Worker& w) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    auto it = r.live.find(w.slot);
    if (it != r.live.end()) drain(r, it->second);
}

void trace_task_lost(const void* engine, std::uint64_t id, pid_t pid, bool retried) {
    auto& r = registry();
    std::lock_guard lk(r.m);
    if (auto p = r.pending.find(Key{engine, id}); p != r.pending.end()) ++p->second.attempt;
    const std::uint64_t now = trace::now_ns();
    trace::add(trace::SpanEvent{sys::current_pid(),
                                (retried ? "retry task " : "quarantine task ") + std::to_string(id),
                                retried ? "retry" : "quarantine", now, now,
                                "\"task\":" + std::to_string(id) +
                                    ",\"worker\":" + std::to_string(pid)});
}

}  // namespace mp::detail
