#include "multiproc/file_descriptor.hpp"

#include "multiproc/errors.hpp"

namespace mp {

FileDescriptor::FileDescriptor(int fd) {
    if (fd < 0) throw UsageError("multiproc: FileDescriptor needs an open descriptor");
    fd_ = std::make_shared<detail::UniqueFd>(fd);
}

FileDescriptor FileDescriptor::dup_of(int fd) {
    FileDescriptor d;
    d.fd_ = std::make_shared<detail::UniqueFd>(detail::UniqueFd::dup_of(fd));
    return d;
}

int FileDescriptor::release() noexcept { return fd_ ? fd_->release() : -1; }

void FileDescriptor::close() noexcept {
    if (fd_) fd_->reset();
}

void FileDescriptor::save(Encoder& e) const {
    if (!*this) throw UsageError("multiproc: cannot send a closed FileDescriptor");
    e.add_fd(get());
}

void FileDescriptor::load(Decoder& d) { fd_ = std::make_shared<detail::UniqueFd>(d.take_fd()); }

namespace reduction {

void send_handle(Connection& conn, int fd, pid_t destination_pid) {
    static_cast<void>(destination_pid);
    conn.send(FileDescriptor::dup_of(fd));
}

FileDescriptor recv_handle(Connection& conn) { return conn.recv<FileDescriptor>(); }

}  // namespace reduction
}  // namespace mp
