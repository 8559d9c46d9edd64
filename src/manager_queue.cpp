// The manager's Queue and JoinableQueue: items kept as blobs; a blocking put or get waits on
// the server thread of the caller's connection.
#include <deque>
#include <stdexcept>

#include "manager_protocol.hpp"

namespace mp::detail {
namespace {

class QueueObject final : public ServerObject {
public:
    QueueObject(std::int32_t maxsize, bool joinable)
        : maxsize_(maxsize > 0 ? maxsize : 0), joinable_(joinable) {}

    void call(std::string_view method, Decoder& a, Encoder& out, const CallContext&) override {
        std::unique_lock lk(m_);
        if (method == "put") {
            Blob item = read_blob(a);
            const auto [block, ns] = read_wait(a);
            a.finish();
            if (!wait_until_true(changed_, lk, block, ns, [&] { return !full(); }))
                throw Full("multiproc: the manager queue stayed full");
            items_.push_back(std::move(item));
            ++unfinished_;
            changed_.notify_all();
        } else if (method == "get") {
            const auto [block, ns] = read_wait(a);
            a.finish();
            if (!wait_until_true(changed_, lk, block, ns, [&] { return !items_.empty(); }))
                throw Empty("multiproc: the manager queue stayed empty");
            write_raw(out, items_.front());
            items_.pop_front();
            changed_.notify_all();
        } else if (method == "qsize") {
            a.finish();
            out(static_cast<std::uint64_t>(items_.size()));
        } else if (method == "full") {
            a.finish();
            out(full());
        } else if (joinable_ && method == "task_done") {
            a.finish();
            if (unfinished_ == 0)
                throw std::invalid_argument(
                    "multiproc: ValueError: task_done() called too many times");
            if (--unfinished_ == 0) changed_.notify_all();
        } else if (joinable_ && method == "join") {
            a.finish();
            changed_.wait(lk, [&] { return unfinished_ == 0; });
        } else {
            unknown_method(joinable_ ? "JoinableQueue" : "Queue", method);
        }
    }

private:
    bool full() const {
        return maxsize_ > 0 && items_.size() >= static_cast<std::size_t>(maxsize_);
    }

    std::mutex m_;
    std::condition_variable changed_;
    std::deque<Blob> items_;
    std::int32_t maxsize_;
    std::uint64_t unfinished_ = 0;
    bool joinable_;
};

}  // namespace

std::unique_ptr<ServerObject> make_queue(Decoder& args) {
    return std::make_unique<QueueObject>(read_int(args), false);
}
std::unique_ptr<ServerObject> make_joinable_queue(Decoder& args) {
    return std::make_unique<QueueObject>(read_int(args), true);
}

}  // namespace mp::detail
