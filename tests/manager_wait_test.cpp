// The manager connection thread's adaptive wait: a client calling back to back keeps the burst
// (the thread polls before it blocks), an idle client does not, and a request that comes after
// the spin, or a peer that leaves, is still seen by the recv that follows.
#include "manager_wait.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <utility>

#include "multiproc/connection.hpp"
#include "multiproc/errors.hpp"

namespace {

using namespace std::chrono_literals;
using mp::detail::RequestWait;

std::vector<std::byte> frame(char c) { return {std::byte(c)}; }

// One request-reply round on the server end: reply, the client's next request, then the wait
// and the recv a connection thread does.
void round(RequestWait& w, mp::Connection& server, mp::Connection& client,
           std::chrono::milliseconds client_pause) {
    w.replied();
    if (client_pause > 0ms) std::this_thread::sleep_for(client_pause);
    client.send_bytes(frame('r'));
    w.before_recv(server);
    EXPECT_EQ(server.recv_bytes(), frame('r'));
    w.received();
}

// Back-to-back rounds until the wait is in a burst (a preemption longer than burst_gap can
// break one round on a loaded machine, so it gets twenty).
bool warm(RequestWait& w, mp::Connection& server, mp::Connection& client) {
    for (int i = 0; i < 20 && !w.in_burst(); ++i) round(w, server, client, 0ms);
    return w.in_burst();
}

TEST(RequestWait, BackToBackRequestsKeepTheBurst) {
    auto [server, client] = mp::Pipe();
    RequestWait w;
    EXPECT_FALSE(w.in_burst());
    // A request a few microseconds after its reply is a burst.
    EXPECT_TRUE(warm(w, server, client));
}

TEST(RequestWait, AnIdleClientEndsTheBurst) {
    auto [server, client] = mp::Pipe();
    RequestWait w;
    ASSERT_TRUE(warm(w, server, client));
    round(w, server, client,
          std::chrono::duration_cast<std::chrono::milliseconds>(RequestWait::burst_gap * 10));
    EXPECT_FALSE(w.in_burst());
}

// A wait in a burst, just after a reply.
class InBurst : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(warm(w, server, client));
        w.replied();
    }
    std::pair<mp::Connection, mp::Connection> ends = mp::Pipe();
    mp::Connection& server = ends.first;
    mp::Connection& client = ends.second;
    RequestWait w;
};

TEST_F(InBurst, ARequestAfterTheSpinIsStillReceived) {
    std::thread late([this] {
        std::this_thread::sleep_for(20ms);  // far beyond spin_for
        client.send_bytes(frame('x'));
    });
    w.before_recv(server);
    EXPECT_EQ(server.recv_bytes(), frame('x'));
    late.join();
    w.received();
    EXPECT_FALSE(w.in_burst());
}

TEST_F(InBurst, APeerThatLeavesDuringTheSpinIsReportedByTheRecv) {
    client.close();
    w.before_recv(server);
    EXPECT_THROW((void)server.recv_bytes(), mp::EOFError);
}

}  // namespace
