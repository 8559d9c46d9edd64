// Cycle and depth checks of decoded values, and the undoing of a failed decode.
//
// A pickle can make a list contain itself (MEMOIZE, then BINGET and APPEND), or nest lists as
// deep as it has bytes. Decoded values are reference counted, so a cycle would leak and a deep
// nest would overflow the stack of every recursive walk (destruction, equality, encoding,
// conversion); the check refuses both before the value reaches the caller.
#include "pickle_graph.hpp"

#include <string>
#include <type_traits>

#include "multiproc/errors.hpp"
#include "multiproc/pickle.hpp"

namespace mp::pickle::detail {

namespace {

constexpr std::size_t kOnPath = ~std::size_t{0};

template <class F>
void for_each_child(const py::object& o, F&& f) {
    std::visit(
        [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::shared_ptr<py::dict>>) {
            for (const auto& [key, value] : v->items) {
                f(key);
                f(value);
            }
        } else if constexpr (std::is_same_v<V, std::shared_ptr<py::instance>>) {
            if (v->args) f(py::object(v->args));
            if (v->state) f(*v->state);
        } else if constexpr (std::is_same_v<V, std::shared_ptr<py::list>> ||
                             std::is_same_v<V, std::shared_ptr<py::tuple>> ||
                             std::is_same_v<V, std::shared_ptr<py::set>> ||
                             std::is_same_v<V, std::shared_ptr<py::frozenset>>) {
            for (const auto& item : v->items) f(item);
        }
        },
        o.value());
}

class Checker {
public:
    // The height of o (0 for a scalar), o being `depth` levels below the root.
    std::size_t visit(const py::object& o, std::size_t depth) {
        const void* node = container(o);
        if (!node) return 0;
        if (depth >= max_depth) too_deep();
        const auto [it, fresh] = height_.try_emplace(node, kOnPath);
        if (!fresh) {
            if (it->second == kOnPath)
                throw DecodeError("mp::pickle: the value contains itself (a cycle), which "
                                  "mp::py::object cannot hold");
            if (depth + it->second > max_depth) too_deep();
            return it->second;
        }
        std::size_t h = 1;
        for_each_child(o, [&](const py::object& child) {
            const std::size_t c = visit(child, depth + 1);
            if (c + 1 > h) h = c + 1;
        });
        height_[node] = h;
        return h;
    }
    Reached take() && { return std::move(height_); }

private:
    [[noreturn]] static void too_deep() {
        throw DecodeError("mp::pickle: the value nests deeper than " + std::to_string(max_depth));
    }
    Reached height_;
};

}  // namespace

const void* container(const py::object& o) noexcept {
    switch (o.kind()) {
        case py::kind::list:
        case py::kind::tuple:
        case py::kind::dict:
        case py::kind::set:
        case py::kind::frozenset:
        case py::kind::instance:
            return std::visit(
                [](const auto& v) -> const void* {
                    if constexpr (requires { v.get(); }) return v.get();
                    else return nullptr;
                },
                o.value());
        default: return nullptr;
    }
}

Reached check_graph(const py::object& root) {
    Checker checker;
    checker.visit(root, 0);
    return std::move(checker).take();
}

void break_containers(std::vector<py::object>& nodes, const Reached& keep) noexcept {
    for (py::object& o : nodes) {
        if (keep.contains(container(o))) continue;
        std::visit(
            [](auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::shared_ptr<py::instance>>) {
                v->args.reset();
                v->state.reset();
            } else if constexpr (std::is_same_v<V, std::shared_ptr<py::dict>> ||
                                 std::is_same_v<V, std::shared_ptr<py::list>> ||
                                 std::is_same_v<V, std::shared_ptr<py::tuple>> ||
                                 std::is_same_v<V, std::shared_ptr<py::set>> ||
                                 std::is_same_v<V, std::shared_ptr<py::frozenset>>) {
                v->items.clear();
            }
            },
            o.value());
    }
}

}  // namespace mp::pickle::detail
