// The manager's dict: values kept as blobs, in insertion order (Python's dict).
#include <list>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "manager_protocol.hpp"

namespace mp::detail {
namespace {

class DictObject final : public ServerObject {
public:
    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext& ctx) override {
        std::lock_guard lk(m_);
        if (method == "set") {
            Blob k = read_blob(a);
            Blob v = read_blob(a);
            a.finish();
            put(std::move(k), std::move(v));
        } else if (method == "get" || method == "pop") {
            const Blob k = read_blob(a);
            a.finish();
            auto it = index_.find(k);
            if (it == index_.end()) throw std::out_of_range("multiproc: KeyError: the manager dict has no such key");
            write_raw(out, it->second->second);
            if (method == "pop") remove(it);
        } else if (method == "get_or" || method == "pop_or") {
            const Blob k = read_blob(a);
            const Blob fallback = read_blob(a);
            a.finish();
            auto it = index_.find(k);
            if (it == index_.end()) {
                write_raw(out, fallback);
            } else {
                write_raw(out, it->second->second);
                if (method == "pop_or") remove(it);
            }
        } else if (method == "contains" || method == "erase") {
            const Blob k = read_blob(a);
            a.finish();
            auto it = index_.find(k);
            const bool found = it != index_.end();
            if (found && method == "erase") remove(it);
            out(found);
        } else if (method == "size") {
            a.finish();
            out(static_cast<std::uint64_t>(entries_.size()));
        } else if (method == "keys" || method == "values" || method == "items") {
            a.finish();
            out.write_size(entries_.size());
            for (const auto& [k, v] : entries_) {
                if (method != "values") write_raw(out, k);
                if (method != "keys") write_raw(out, v);
            }
        } else if (method == "update") {
            const std::size_t n = a.read_count(2 * sizeof(std::uint64_t));
            for (std::size_t i = 0; i < n; ++i) {
                Blob k = read_blob(a);
                Blob v = read_blob(a);
                put(std::move(k), std::move(v));
            }
            a.finish();
        } else if (method == "setdefault") {
            Blob k = read_blob(a);
            Blob v = read_blob(a);
            a.finish();
            auto it = index_.find(k);
            if (it == index_.end()) it = put(std::move(k), std::move(v));
            write_raw(out, it->second->second);
        } else if (method == "clear") {
            a.finish();
            index_.clear();
            entries_.clear();
        } else if (method == "update_with") {
            // Atomic read-modify-write: the function runs here, under the dict's lock.
            Blob k = read_blob(a);
            const Blob initial = read_blob(a);
            const Blob package = read_package(a);
            a.finish();
            auto it = index_.find(k);
            Blob next = run_update(package, it == index_.end() ? initial : it->second->second, ctx);
            write_raw(out, next);
            if (it == index_.end()) put(std::move(k), std::move(next));
            else it->second->second = std::move(next);
        } else {
            unknown_method("dict", method);
        }
    }

private:
    using Entries = std::list<std::pair<Blob, Blob>>;
    using Index = std::unordered_map<Blob, Entries::iterator>;

    Index::iterator put(Blob k, Blob v) {
        auto it = index_.find(k);
        if (it != index_.end()) {
            it->second->second = std::move(v);
            return it;
        }
        entries_.emplace_back(k, std::move(v));
        return index_.emplace(std::move(k), std::prev(entries_.end())).first;
    }
    void remove(Index::iterator it) {
        entries_.erase(it->second);
        index_.erase(it);
    }

    std::mutex m_;
    Entries entries_;
    Index index_;
};

}  // namespace

std::unique_ptr<ServerObject> make_dict(Decoder& args) {
    args.finish();
    return std::make_unique<DictObject>();
}

}  // namespace mp::detail
