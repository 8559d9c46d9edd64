// User types served by a manager (see multiproc/managers.hpp, BaseManager): the registry of a
// type's constructor and methods, which travels to the server process as code identities (so a
// spawned or forkserver-started server finds them in its own copy of the binary), and Proxy<T>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "multiproc/detail/manager_proxy.hpp"

namespace mp {
namespace detail {

/// A function of this program that crosses to the server by identity (module + offset).
struct CodeRef {
    std::uintptr_t address = 0;
    /// Codec hook: the identity of the address.
    void save(Encoder& e) const;
    /// Codec hook: resolves the identity in this process (a function of its symbol table).
    void load(Decoder& d);
};

using ConstructFn = void* (*)(Decoder& args);
using DestroyFn = void (*)(void* object);
using MethodFn = void (*)(void* object, Decoder& args, Encoder& out);

/// One registered type: how to make, destroy and call it.
struct TypeEntry {
    std::string name;
    CodeRef construct, destroy;
    std::vector<std::pair<std::string, CodeRef>> methods;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(name, construct, destroy, methods);
    }
};
using TypeRegistry = std::vector<TypeEntry>;

template <class M>
struct member_fn;
template <class C, class R, class... A>
struct member_fn<R (C::*)(A...)> {
    using cls = C;
    using ret = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class C, class R, class... A>
struct member_fn<R (C::*)(A...) const> : member_fn<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct member_fn<R (C::*)(A...) noexcept> : member_fn<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct member_fn<R (C::*)(A...) const noexcept> : member_fn<R (C::*)(A...)> {};

template <class T, class... A>
void* construct_object(Decoder& in) {
    auto args = decode_value<std::tuple<A...>>(in);
    in.finish();
    return std::apply([](auto&... a) { return static_cast<void*>(new T(std::move(a)...)); }, args);
}

template <class T>
void destroy_object(void* object) {
    delete static_cast<T*>(object);
}

template <auto M>
void call_member(void* object, Decoder& in, Encoder& out) {
    using F = member_fn<decltype(M)>;
    auto args = decode_value<typename F::args>(in);
    in.finish();
    auto& self = *static_cast<typename F::cls*>(object);
    if constexpr (std::is_void_v<typename F::ret>) {
        std::apply([&](auto&... a) { (self.*M)(std::move(a)...); }, args);
    } else {
        const std::remove_cvref_t<typename F::ret> r =
            std::apply([&](auto&... a) { return (self.*M)(std::move(a)...); }, args);
        out(r);
    }
}

template <class F>
CodeRef code_ref(F* f) noexcept {
    return CodeRef{reinterpret_cast<std::uintptr_t>(f)};
}

}  // namespace detail

/// What register_type returns: adds the methods clients may call.
template <class T>
class TypeRegistration {
public:
    explicit TypeRegistration(detail::TypeEntry& e) noexcept : e_(&e) {}
    /// Exposes member function M under `name`: `.method<&Counter::inc>("inc")` (the member is a
    /// template argument so that the server, a separate process, calls it through a function of
    /// its own copy of the program). Its arguments and result must be shippable.
    template <auto M>
    TypeRegistration& method(std::string name) {
        static_assert(std::is_member_function_pointer_v<decltype(M)>,
                      "multiproc: method<M>: M must be a pointer to a member function, &T::name");
        static_assert(std::is_base_of_v<typename detail::member_fn<decltype(M)>::cls, T>,
                      "multiproc: method<M>: M must be a member function of the registered type");
        e_->methods.emplace_back(std::move(name), detail::code_ref(&detail::call_member<M>));
        return *this;
    }

private:
    detail::TypeEntry* e_;
};

/// A proxy to an object of a registered type on a manager server.
template <class T = void>
class Proxy : public BaseProxy {
public:
    Proxy() = default;
    explicit Proxy(detail::ProxyCore core) : BaseProxy(std::move(core)) {}
    /// Calls method `name` with args (encoded as their decayed types: they must be the types
    /// the registered member takes) and returns its result as an R. The server's exception
    /// comes back as the same standard type, else mp::RemoteError (DESIGN.md 6).
    template <class R = void, class... A>
    R call(std::string_view name, const A&... args) const {
        Encoder e = core_.request(name);
        e(std::tuple<detail::stored_arg_t<A>...>(args...));
        return core_.call(e).template get<R>();
    }
    /// Calls member M, registered under `name`, with args converted to its parameter types;
    /// returns its result type.
    template <auto M, class... A>
    auto call(std::string_view name, A&&... args) const {
        using F = detail::member_fn<decltype(M)>;
        Encoder e = core_.request(name);
        e(typename F::args(std::forward<A>(args)...));
        return core_.call(e).template get<std::remove_cvref_t<typename F::ret>>();
    }
};

}  // namespace mp
