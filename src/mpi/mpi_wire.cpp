#include "mpi/mpi_wire.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "mpi/mpi_runtime.hpp"
#include "multiproc/errors.hpp"

namespace mp::detail::mpi {

std::vector<std::byte> make_message(MessageKind kind, std::uint32_t session,
                                    std::span<const std::byte> bytes, std::uint32_t slot) {
    std::vector<std::byte> m(sizeof(MessageHeader) + bytes.size());
    const MessageHeader h{kind, session, slot};
    std::memcpy(m.data(), &h, sizeof h);
    if (!bytes.empty()) std::memcpy(m.data() + sizeof h, bytes.data(), bytes.size());
    return m;
}

void split_data(std::vector<std::vector<std::byte>>& out, std::uint32_t session,
                std::span<const std::byte> bytes, std::uint32_t slot) {
    while (!bytes.empty()) {
        const std::size_t n = std::min(bytes.size(), kMaxPiece);
        out.push_back(make_message(MessageKind::data, session, bytes.first(n), slot));
        bytes = bytes.subspan(n);
    }
}

MessageHeader header_of(std::span<const std::byte> message) {
    if (message.size() < sizeof(MessageHeader))
        throw DecodeError("multiproc: mpi: a message shorter than its header");
    MessageHeader h;
    std::memcpy(&h, message.data(), sizeof h);
    return h;
}

void check_mpi(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw ProcessError(std::string("multiproc: mpi: ") + what + ": " + std::string(text, len));
}

std::vector<std::byte> receive_probed(MPI_Status& status, const char* what) {
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), what);
    std::vector<std::byte> m(static_cast<std::size_t>(std::max(count, 0)));
    check_mpi(MPI_Recv(m.data(), count, MPI_BYTE, status.MPI_SOURCE, kTag, job_comm(),
                       MPI_STATUS_IGNORE),
              what);
    return m;
}

}  // namespace mp::detail::mpi
