// mp::pickle's writer for dynamic objects (py::object). A node that more than one object shares
// is written once and then referred to through the memo (BINGET), as Python's pickler does for
// every object, so sharing survives the trip and a value shared many times costs one copy.
#include <string>
#include <type_traits>

#include "multiproc/pickle.hpp"
#include "pickle_globals.hpp"
#include "pickle_opcodes.hpp"

namespace mp::pickle::detail {

void Writer::object(const py::object& o) { object_at(o, 0); }

bool Writer::memo_get(const void* node) {
    const auto it = memo_.find(node);
    if (it == memo_.end()) return false;
    if (it->second < 256) {
        put(op::BINGET);
        put(static_cast<std::uint8_t>(it->second));
    } else {
        put(op::LONG_BINGET);
        std::byte* p = grow(4);
        for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(it->second >> (8 * i));
    }
    return true;
}

void Writer::memo_put(const void* node) {
    const std::uint32_t index = memo_count_++;
    memo_.emplace(node, index);
    if (protocol_ >= 4) {
        put(op::MEMOIZE);
    } else if (index < 256) {
        put(op::BINPUT);
        put(static_cast<std::uint8_t>(index));
    } else {
        put(op::LONG_BINPUT);
        std::byte* p = grow(4);
        for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(index >> (8 * i));
    }
}

// One case per kind of node, each a few opcodes.
void Writer::object_at(const py::object& o, std::size_t depth) {
    if (depth > max_depth)
        throw UsageError("mp::pickle: a value nested deeper than " + std::to_string(max_depth) +
                         " (or a cycle through a tuple)");
    std::visit(
        [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::monostate>) {
            none();
        } else if constexpr (std::is_same_v<V, bool>) {
            boolean(v);
        } else if constexpr (std::is_same_v<V, std::int64_t>) {
            integer(v);
        } else if constexpr (std::is_same_v<V, double>) {
            floating(v);
        } else if constexpr (std::is_same_v<V, std::shared_ptr<const py::bigint>>) {
            big(*v);
        } else {
            const bool shared = v.use_count() > 1;
            if (shared && memo_get(v.get())) return;
            const auto remember = [&] {
                if (shared) memo_put(v.get());
            };
            using N = typename V::element_type;
            if constexpr (std::is_same_v<N, py::str>) {
                str(v->value);
                remember();
            } else if constexpr (std::is_same_v<N, py::bytes>) {
                bytes(v->value);
                remember();
            } else if constexpr (std::is_same_v<N, py::bytearray>) {
                bytearray(v->value);
                remember();
            } else if constexpr (std::is_same_v<N, const py::global>) {
                global(v->module, v->name);
                remember();
            } else if constexpr (std::is_same_v<N, py::list>) {
                empty_list();
                remember();
                batches(v->items, op::APPENDS,
                        [&](const py::object& item) { object_at(item, depth + 1); });
            } else if constexpr (std::is_same_v<N, py::dict>) {
                if (v->ordered) {
                    global("collections", "OrderedDict");
                    put(op::EMPTY_TUPLE);
                    put(op::REDUCE);
                } else {
                    empty_dict();
                }
                remember();
                batches(v->items, op::SETITEMS, [&](const auto& kv) {
                    object_at(kv.first, depth + 1);
                    object_at(kv.second, depth + 1);
                });
            } else if constexpr (std::is_same_v<N, py::tuple>) {
                begin_tuple(v->items.size());
                for (const auto& item : v->items) object_at(item, depth + 1);
                end_tuple(v->items.size());
                remember();
            } else if constexpr (std::is_same_v<N, py::set> || std::is_same_v<N, py::frozenset>) {
                constexpr bool frozen = std::is_same_v<N, py::frozenset>;
                begin_set(frozen, v->items.size());
                for (const auto& item : v->items) object_at(item, depth + 1);
                end_set(frozen, v->items.size());
                remember();
            } else {
                static_assert(std::is_same_v<N, py::instance>);
                global(v->cls.module, v->cls.name);
                const auto& args = v->args ? v->args->items : std::vector<py::object>{};
                begin_tuple(args.size());
                for (const auto& item : args) object_at(item, depth + 1);
                end_tuple(args.size());
                put(pickled_with_newobj(v->cls) ? op::NEWOBJ : op::REDUCE);
                remember();
                if (v->state) {
                    object_at(*v->state, depth + 1);
                    put(op::BUILD);
                }
            }
        }
        },
        o.value());
}

}  // namespace mp::pickle::detail
