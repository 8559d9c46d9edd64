// The shape checks mp::pickle applies to a decoded value: no cycle, nesting at most
// pickle::max_depth; and the undoing of a failed decode, which may have built cycles.
#pragma once

#include <unordered_map>
#include <vector>

#include "multiproc/pickle_object.hpp"

namespace mp::pickle::detail {

/// The node of a container (a list, tuple, dict, set, frozenset or instance: a kind that holds
/// other objects), else null.
const void* container(const py::object& o) noexcept;

/// The containers a value reaches, each with its height (what check_graph returns).
using Reached = std::unordered_map<const void*, std::size_t>;

/// The containers root reaches; mp::DecodeError when root contains itself (through any path)
/// or nests deeper than max_depth. Linear in the number of distinct containers (shared ones
/// are visited once).
Reached check_graph(const py::object& root);

/// Empties every container in nodes but those in keep, so that cycles among them are broken
/// and their release recurses no deeper than one level.
void break_containers(std::vector<py::object>& nodes, const Reached& keep = {}) noexcept;

}  // namespace mp::pickle::detail
