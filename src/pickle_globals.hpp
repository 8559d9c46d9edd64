// The allowlist of globals mp::pickle understands, and what calling each does (REDUCE, NEWOBJ):
// the only place that gives a pickled global a meaning, so the decoder runs no code it names.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "multiproc/pickle_object.hpp"

namespace mp::pickle::detail {

/// The allowlisted class or function module.name, or mp::DecodeError naming it.
py::object find_global(std::string_view module, std::string_view name);

/// REDUCE: callable(*args) for an allowlisted callable (set, frozenset, bytes, bytearray,
/// _codecs.encode, collections.OrderedDict, an exception class); mp::DecodeError otherwise.
/// What a call copies (items, bytes) is taken from `budget`: a pickle could otherwise call
/// set(l) on one memoized list again and again, each call a few bytes, each copy all of l.
py::object call_global(const py::object& callable, const py::object& args, std::size_t& budget);

/// NEWOBJ: cls.__new__(cls, *args) for an allowlisted class whose instances Python pickles that
/// way (multiprocessing.managers.Token; exception classes); mp::DecodeError otherwise.
py::object new_instance(const py::object& cls, const py::object& args);

/// BUILD: sets state on an instance made by call_global or new_instance.
void build_instance(py::object& target, const py::object& state);

/// True when Python pickles instances of cls with NEWOBJ and BUILD (a Token) rather than REDUCE.
bool pickled_with_newobj(const py::global& cls) noexcept;

}  // namespace mp::pickle::detail
