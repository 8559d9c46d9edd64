// The task protocol's type-erased half (detail/task_protocol.hpp).
#include "multiproc/detail/task_protocol.hpp"

namespace mp::detail {

void encode_task_error(Encoder& out, const std::exception_ptr& error) {
    const auto s = static_cast<std::uint8_t>(TaskStatus::error);
    out.write_bytes(&s, 1);
    out(error);
}

void read_task_status(Decoder& d) {
    std::uint8_t s = 0;
    d.read_bytes(&s, 1);
    if (s == static_cast<std::uint8_t>(TaskStatus::ok)) return;
    if (s != static_cast<std::uint8_t>(TaskStatus::error))
        throw DecodeError("multiproc: corrupt task result: unknown status byte");
    std::exception_ptr ex = decode_exception(d);
    d.finish();
    if (!ex) throw DecodeError("multiproc: corrupt task result: an error without an exception");
    std::rethrow_exception(ex);
}

[[gnu::hot]] void run_shipped_task(std::span<const std::byte> bytes, std::span<UniqueFd> fds,
                                   Encoder& out) {
    Decoder d(bytes, fds);
    open_package(d)(d, &out);
}

}  // namespace mp::detail
