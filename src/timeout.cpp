#include "multiproc/timeout.hpp"

#include <climits>

namespace mp::detail {

int Deadline::poll_ms() const noexcept {
    if (!at_) return -1;
    auto ns = remaining().count();
    auto ms = (ns + 999'999) / 1'000'000;
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace mp::detail
