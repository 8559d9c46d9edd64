// BulkBuffer (detail/task.hpp): a large task argument in a memfd, mapped by the worker.
#include <memory>

#include "multiproc/detail/task.hpp"
#include "sys/io.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"

namespace mp::detail {

BulkBuffer BulkBuffer::create(const void* data, std::size_t bytes) {
    BulkBuffer b;
    b.fd_ = sys::make_memfd("mp-task-arg", 0);
    sys::write_all(b.fd_.get(), data, bytes);
    return b;
}

BulkBuffer BulkBuffer::map(UniqueFd fd, std::size_t bytes) {
    if (sys::file_size(fd.get()) < bytes)
        throw DecodeError("multiproc: corrupt task: a shared argument is shorter than announced");
    BulkBuffer b;
    b.fd_ = std::move(fd);
    if (bytes) {
        auto owner =
            std::make_shared<sys::Mapping>(sys::Mapping::map_read_only(b.fd_.get(), bytes));
        b.map_ = std::shared_ptr<const std::byte>(owner, owner->data());
    }
    return b;
}

}  // namespace mp::detail
