// ChunkFailures (detail/task.hpp): the error list of a chunk whose result is raw or void,
// written by the worker's chunk thunk and read by the parent, compiled once here rather than in
// every program for every mapped function.
#include <cstdint>
#include <exception>
#include <utility>

#include "multiproc/detail/task.hpp"

namespace mp::detail {

void ChunkFailures::add(std::size_t i, std::exception_ptr e) {
    list_.emplace_back(i, std::move(e));
}

void ChunkFailures::write(Encoder& out) const {
    out.write_size(list_.size());
    for (const auto& [i, ex] : list_) {
        out.write_size(i);
        out(ex);
    }
}

void ChunkFailures::read(Decoder& in, std::size_t n, bool by_item) {
    const std::size_t nerr = in.read_count(sizeof(std::uint64_t));
    if (by_item) failed_.assign(n, false);
    list_.reserve(nerr);
    for (std::size_t k = 0; k < nerr; ++k) {
        const auto i = static_cast<std::size_t>(in.read_size());
        if (i >= n) throw DecodeError("multiproc: corrupt chunk result: bad index");
        list_.emplace_back(i, decode_exception(in));
        if (by_item) failed_[i] = true;
    }
    in.finish();
}

}  // namespace mp::detail
