// The engine's transport over an AF_UNIX stream socket (transport.hpp).
#include "sys/nbsocket.hpp"
#include "sys/socket.hpp"
#include "transport.hpp"

namespace mp::detail::wire {

namespace {

class SocketTransport final : public Transport {
public:
    SocketTransport(UniqueFd sock, const char* who) : sock_(std::move(sock)), who_(who) {}

    void send_some() override {
        while (out_.pending()) {
            iovec iov{out_.bytes.data() + out_.sent, out_.bytes.size() - out_.sent};
            const ssize_t r = sys::send_nonblocking(sock_.get(), &iov, 1, out_.fds);
            if (r < 0) {  // the peer is gone; the supervisor learns how from its sentinel
                closed_ = true;
                return;
            }
            if (r == 0) return;
            out_.fds.clear();  // they rode with the first byte sent
            out_.sent += static_cast<std::size_t>(r);
        }
        out_.bytes.clear();
        out_.sent = 0;
    }

    Received receive_some() override {
        const auto room = in_.space();
        const ssize_t r =
            sys::recv_nonblocking(sock_.get(), room.data(), room.size(), in_.arriving_fds());
        if (r < 0) return Received::nothing;  // nothing more now
        if (r == 0) {
            closed_ = true;
            return Received::nothing;
        }
        in_.commit(static_cast<std::size_t>(r));
        return static_cast<std::size_t>(r) == room.size() ? Received::filled : Received::some;
    }

    pollfd poll_entry() const override {
        return {sock_.get(), static_cast<short>(POLLIN | (out_.pending() ? POLLOUT : 0)), 0};
    }

    void send_all() override {
        if (!out_.pending()) return;
        iovec iov{out_.bytes.data() + out_.sent, out_.bytes.size() - out_.sent};
        sys::send_all(sock_.get(), &iov, 1, out_.fds);
        out_.fds.clear();
        out_.bytes.clear();
        out_.sent = 0;
    }

    bool receive_frame(Frame& f) override {
        while (!in_.next(f, who_)) {
            const auto room = in_.space();
            const std::size_t r =
                sys::recv_some(sock_.get(), room.data(), room.size(), in_.arriving_fds());
            if (r == 0) {
                closed_ = true;
                return false;
            }
            in_.commit(r);
        }
        return true;
    }

private:
    UniqueFd sock_;
    const char* who_;
};

}  // namespace

std::unique_ptr<Transport> socket_transport(UniqueFd sock, const char* who) {
    return std::make_unique<SocketTransport>(std::move(sock), who);
}

}  // namespace mp::detail::wire
