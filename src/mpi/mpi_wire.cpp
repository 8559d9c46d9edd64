#include "mpi/mpi_wire.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "mpi/mpi_runtime.hpp"
#include "multiproc/errors.hpp"

namespace mp::detail::mpi {

namespace {

void append_trailer(std::vector<std::byte>& m, MessageKind kind, std::uint32_t session,
                    std::uint32_t slot) {
    const MessageTrailer t{kind, session, slot};
    const auto* p = reinterpret_cast<const std::byte*>(&t);
    m.insert(m.end(), p, p + sizeof t);
}

}  // namespace

std::vector<std::byte> make_message(MessageKind kind, std::uint32_t session,
                                    std::span<const std::byte> bytes, std::uint32_t slot) {
    std::vector<std::byte> m;
    m.reserve(bytes.size() + sizeof(MessageTrailer));
    m.assign(bytes.begin(), bytes.end());
    append_trailer(m, kind, session, slot);
    return m;
}

void split_data(std::vector<std::vector<std::byte>>& out, std::uint32_t session,
                std::vector<std::byte>&& bytes, std::uint32_t slot) {
    if (bytes.size() <= kMaxPiece) {
        if (bytes.empty()) return;
        append_trailer(bytes, MessageKind::data, session, slot);
        out.push_back(std::move(bytes));
        return;
    }
    for (std::span<const std::byte> rest(bytes); !rest.empty();) {
        const std::size_t n = std::min(rest.size(), kMaxPiece);
        out.push_back(make_message(MessageKind::data, session, rest.first(n), slot));
        rest = rest.subspan(n);
    }
}

MessageTrailer trailer_of(std::span<const std::byte> message) {
    if (message.size() < sizeof(MessageTrailer))
        throw DecodeError("multiproc: mpi: a message shorter than its trailer");
    MessageTrailer t;
    std::memcpy(&t, message.data() + message.size() - sizeof t, sizeof t);
    return t;
}

void check_mpi(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw ProcessError(std::string("multiproc: mpi: ") + what + ": " + std::string(text, len));
}

std::vector<std::byte> receive_probed(MPI_Status& status, const char* what,
                                      std::vector<std::byte> into) {
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), what);
    std::vector<std::byte> m = std::move(into);
    m.resize(static_cast<std::size_t>(std::max(count, 0)));
    check_mpi(MPI_Recv(m.data(), count, MPI_BYTE, status.MPI_SOURCE, kTag, job_comm(),
                       MPI_STATUS_IGNORE),
              what);
    return m;
}

}  // namespace mp::detail::mpi
