// OwnedCall (detail/engine.hpp) and finish_owned_call (detail/task.hpp): packaged calls whose
// descriptors the engine owns.
#include <algorithm>

#include "multiproc/detail/engine.hpp"
#include "multiproc/detail/task.hpp"

namespace mp::detail {

OwnedCall OwnedCall::adopt(ShippedCall&& call) {
    OwnedCall c;
    c.bytes = std::move(call.bytes);
    c.fds.reserve(call.fds.size());
    for (int fd : call.fds) c.fds.push_back(UniqueFd::dup_of(fd));
    return c;
}

OwnedCall finish_owned_call(Encoder& e, std::vector<UniqueFd>& own) {
    OwnedCall c;
    c.fds.reserve(e.fds().size());
    for (int fd : e.fds()) {
        auto it =
            std::find_if(own.begin(), own.end(), [fd](const UniqueFd& u) { return u.get() == fd; });
        c.fds.push_back(it != own.end() ? std::move(*it) : UniqueFd::dup_of(fd));
    }
    c.bytes = std::move(e.bytes());
    return c;
}

}  // namespace mp::detail
