// The manager's list and Array: values kept as blobs; indexes as Python's (negative from the
// end). An Array is a list whose size is fixed.
#include <mutex>
#include <stdexcept>
#include <vector>

#include "manager_protocol.hpp"

namespace mp::detail {
namespace {

class ListObject final : public ServerObject {
public:
    ListObject(Decoder& a, bool fixed) : fixed_(fixed) {
        read_items(a);
        a.finish();
    }

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::lock_guard lk(m_);
        if (method == "get") {
            const std::size_t i = index(read_index(a), false);
            a.finish();
            write_raw(out, items_[i]);
        } else if (method == "set") {
            const std::int64_t raw = read_index(a);
            Blob v = read_blob(a);
            a.finish();
            items_[index(raw, false)] = std::move(v);
        } else if (method == "size") {
            a.finish();
            out(static_cast<std::uint64_t>(items_.size()));
        } else if (method == "copy") {
            a.finish();
            out.write_size(items_.size());
            for (const auto& v : items_) write_raw(out, v);
        } else if (fixed_) {
            unknown_method("Array", method);
        } else if (method == "append") {
            items_.push_back(read_blob(a));
            a.finish();
        } else if (method == "extend") {
            read_items(a);
            a.finish();
        } else if (method == "pop") {
            const std::int64_t raw = read_index(a);
            a.finish();
            if (items_.empty())
                throw std::out_of_range("multiproc: IndexError: pop from an empty manager list");
            const std::size_t i = index(raw, false);
            write_raw(out, items_[i]);
            items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
        } else if (method == "insert") {
            const std::size_t i = index(read_index(a), true);
            Blob v = read_blob(a);
            a.finish();
            items_.insert(items_.begin() + static_cast<std::ptrdiff_t>(i), std::move(v));
        } else if (method == "clear") {
            a.finish();
            items_.clear();
        } else {
            unknown_method("list", method);
        }
    }

private:
    void read_items(Decoder& a) {
        const std::size_t n = a.read_count(sizeof(std::uint64_t));
        for (std::size_t i = 0; i < n; ++i) items_.push_back(read_blob(a));
    }
    static std::int64_t read_index(Decoder& a) {
        std::int64_t i;
        a(i);
        return i;
    }
    // Python's index: negative counts from the end. Clamped (insert) or checked.
    std::size_t index(std::int64_t i, bool clamp) const {
        const auto n = static_cast<std::int64_t>(items_.size());
        if (i < 0) i += n;
        if (clamp) return static_cast<std::size_t>(i < 0 ? 0 : (i > n ? n : i));
        if (i < 0 || i >= n)
            throw std::out_of_range("multiproc: IndexError: manager " +
                                    std::string(fixed_ ? "array" : "list") + " index out of range");
        return static_cast<std::size_t>(i);
    }

    std::mutex m_;
    std::vector<Blob> items_;
    bool fixed_;
};

}  // namespace

std::unique_ptr<ServerObject> make_list(Decoder& args) {
    return std::make_unique<ListObject>(args, false);
}
std::unique_ptr<ServerObject> make_array(Decoder& args) {
    return std::make_unique<ListObject>(args, true);
}

}  // namespace mp::detail
