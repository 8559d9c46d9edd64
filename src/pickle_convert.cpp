// The errors of mp::pickle's typed decoding (detail::convert in multiproc/pickle.hpp): each says
// what was expected and what the pickle held.
#include <string>

#include "multiproc/errors.hpp"
#include "multiproc/pickle.hpp"

namespace mp::pickle::detail {

void wrong_type(const py::object& o, std::string_view wanted) {
    throw DecodeError("mp::pickle: expected " + std::string(wanted) + ", got " +
                      std::string(py::kind_name(o.kind())));
}

void wrong_length(std::size_t got, std::size_t wanted) {
    throw DecodeError("mp::pickle: expected a tuple of " + std::to_string(wanted) + " items, got " +
                      std::to_string(got));
}

void out_of_range(std::string_view wanted) {
    throw DecodeError("mp::pickle: an int out of the range of " + std::string(wanted));
}

}  // namespace mp::pickle::detail
