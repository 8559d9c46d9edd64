// User types on a manager server: registered functions that cross by identity, and the server
// object that holds one instance and calls its registered methods.
#include <mutex>

#include "manager_protocol.hpp"
#include "multiproc/callable.hpp"

namespace mp::detail {

void CodeRef::save(Encoder& e) const { encode_code_address(e, address); }

void CodeRef::load(Decoder& d) { address = resolve_code_address(d, EntryKind::function); }

namespace {

class UserObject final : public ServerObject {
public:
    UserObject(const TypeEntry& t, void* object) : type_(t), object_(object) {}
    ~UserObject() override { reinterpret_cast<DestroyFn>(type_.destroy.address)(object_); }
    UserObject(const UserObject&) = delete;
    UserObject& operator=(const UserObject&) = delete;

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        for (const auto& [name, fn] : type_.methods) {
            if (name != method) continue;
            // One call at a time on an object: its methods need not be thread-safe.
            std::lock_guard lk(m_);
            reinterpret_cast<MethodFn>(fn.address)(object_, a, out);
            return;
        }
        unknown_method(type_.name, method);
    }

private:
    const TypeEntry& type_;  // the server's registry outlives its objects
    void* object_;
    std::mutex m_;
};

}  // namespace

std::unique_ptr<ServerObject> make_user_object(const TypeEntry& type, Decoder& args) {
    void* object = reinterpret_cast<ConstructFn>(type.construct.address)(args);
    return std::make_unique<UserObject>(type, object);
}

}  // namespace mp::detail
