// The manager's dict: a DictStore (shared memory under a robust lock) that the server and every
// client on its machine operate on in place, in insertion order (Python's dict). The same
// object runs a method in the server (for remote clients) and in an attached client.
#include <stdexcept>

#include "manager_protocol.hpp"
#include "manager_store.hpp"

namespace mp::detail {
namespace {

[[noreturn]] void missing_key() {
    throw std::out_of_range("multiproc: KeyError: the manager dict has no such key");
}

void write_view(Encoder& out, std::string_view b) { out.write_bytes(b.data(), b.size()); }

class DictObject final : public ServerObject {
public:
    explicit DictObject(std::shared_ptr<DictStore> s) : s_(std::move(s)) {}

    std::shared_ptr<DictStore> shared_store() override { return s_; }

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext& ctx) override {
        DictStore& s = *s_;
        if (method == "set") {
            const Blob k = read_blob(a);
            const Blob v = read_blob(a);
            a.finish();
            DictStore::Locked lk(s);
            s.put(k, v);
        } else if (method == "get" || method == "pop" || method == "get_or" || method == "pop_or") {
            const bool pop = method.starts_with("pop");
            const Blob k = read_blob(a);
            const std::optional<Blob> fallback =
                method.ends_with("_or") ? std::optional(read_blob(a)) : std::nullopt;
            a.finish();
            DictStore::Locked lk(s);
            const auto v = s.find(k);
            if (!v && !fallback) missing_key();
            write_view(out, v ? *v : *fallback);
            if (v && pop) s.remove(k);
        } else if (method == "contains" || method == "erase") {
            const Blob k = read_blob(a);
            a.finish();
            DictStore::Locked lk(s);
            out(method == "erase" ? s.remove(k) : s.find(k).has_value());
        } else if (method == "size") {
            a.finish();
            DictStore::Locked lk(s);
            out(static_cast<std::uint64_t>(s.size()));
        } else if (method == "keys" || method == "values" || method == "items") {
            a.finish();
            DictStore::Locked lk(s);
            const auto all = s.entries();
            out.write_size(all.size());
            for (const auto& [k, v] : all) {
                if (method != "values") write_view(out, k);
                if (method != "keys") write_view(out, v);
            }
        } else if (method == "update") {
            const std::size_t n = a.read_count(2 * sizeof(std::uint64_t));
            std::vector<std::pair<Blob, Blob>> kvs;
            for (std::size_t i = 0; i < n; ++i) {
                Blob k = read_blob(a);
                kvs.emplace_back(std::move(k), read_blob(a));
            }
            a.finish();
            DictStore::Locked lk(s);
            for (const auto& [k, v] : kvs) s.put(k, v);
        } else if (method == "setdefault") {
            const Blob k = read_blob(a);
            const Blob v = read_blob(a);
            a.finish();
            DictStore::Locked lk(s);
            if (const auto old = s.find(k)) {
                write_view(out, *old);
            } else {
                s.put(k, v);
                write_raw(out, v);
            }
        } else if (method == "clear") {
            a.finish();
            DictStore::Locked lk(s);
            s.clear();
        } else if (method == "update_with") {
            // Atomic read-modify-write: the function runs under the dict's lock.
            const Blob k = read_blob(a);
            const Blob initial = read_blob(a);
            const Blob package = read_package(a);
            a.finish();
            DictStore::Locked lk(s);
            const auto old = s.find(k);
            const Blob next = run_update(package, old ? Blob(*old) : initial, ctx);
            s.put(k, next);
            write_raw(out, next);
        } else {
            unknown_method("dict", method);
        }
    }

private:
    std::shared_ptr<DictStore> s_;
};

}  // namespace

std::unique_ptr<ServerObject> make_dict(Decoder& args) {
    args.finish();
    return std::make_unique<DictObject>(DictStore::create());
}

std::shared_ptr<ServerObject> attach_dict(std::shared_ptr<DictStore> store) {
    return std::make_shared<DictObject>(std::move(store));
}

}  // namespace mp::detail
