// The manager's Namespace (named blobs) and Value (one blob).
#include <map>
#include <mutex>
#include <stdexcept>

#include "manager_protocol.hpp"

namespace mp::detail {
namespace {

class NamespaceObject final : public ServerObject {
public:
    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::lock_guard lk(m_);
        // The name travels as a blob of a std::string (the proxy's put_blob).
        const Blob name = read_blob(a);
        if (method == "set") {
            Blob v = read_blob(a);
            a.finish();
            attrs_[name] = std::move(v);
            return;
        }
        a.finish();
        auto it = attrs_.find(name);
        if (method == "get") {
            if (it == attrs_.end())
                throw std::out_of_range(
                    "multiproc: AttributeError: the namespace has no such name");
            write_raw(out, it->second);
        } else if (method == "contains" || method == "erase") {
            const bool found = it != attrs_.end();
            if (found && method == "erase") attrs_.erase(it);
            out(found);
        } else {
            unknown_method("Namespace", method);
        }
    }

private:
    std::mutex m_;
    std::map<Blob, Blob> attrs_;
};

class ValueObject final : public ServerObject {
public:
    explicit ValueObject(Decoder& a) : value_(read_blob(a)) { a.finish(); }

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext& ctx) override {
        std::lock_guard lk(m_);
        if (method == "get") {
            a.finish();
            write_raw(out, value_);
        } else if (method == "set") {
            Blob v = read_blob(a);
            a.finish();
            value_ = std::move(v);
        } else if (method == "update_with") {
            const Blob package = read_package(a);
            a.finish();
            value_ = run_update(package, value_, ctx);
            write_raw(out, value_);
        } else {
            unknown_method("Value", method);
        }
    }

private:
    std::mutex m_;
    Blob value_;
};

}  // namespace

std::unique_ptr<ServerObject> make_namespace(Decoder& args) {
    args.finish();
    return std::make_unique<NamespaceObject>();
}
std::unique_ptr<ServerObject> make_value(Decoder& args) {
    return std::make_unique<ValueObject>(args);
}

}  // namespace mp::detail
