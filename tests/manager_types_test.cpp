// BaseManager with user types: registered constructors and methods called through Proxy<T>
// from processes of every start method; server-side exceptions; bound names; and the remote
// manager example's two programs.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/start_method_test.hpp"
#include "multiproc/errors.hpp"
#include "multiproc/managers.hpp"
#include "multiproc/process.hpp"

namespace {

class Counter {
public:
    Counter() = default;
    explicit Counter(int start) : n_(start) {}
    int inc(int by) {
        if (by < 0) throw std::invalid_argument("Counter::inc: negative step");
        return n_ += by;
    }
    [[nodiscard]] int get() const { return n_; }
    void rename(std::string name) { name_ = std::move(name); }
    [[nodiscard]] std::string name() const { return name_; }

private:
    int n_ = 0;
    std::string name_;
};

struct Oops : std::exception {
    const char* what() const noexcept override { return "oops"; }
};
struct Thrower {
    int boom() { throw Oops(); }
};

mp::BaseManager counters() {
    mp::BaseManager b;
    b.register_type<Counter, int>("Counter")
        .method<&Counter::inc>("inc")
        .method<&Counter::get>("get")
        .method<&Counter::rename>("rename")
        .method<&Counter::name>("name");
    b.register_type<Thrower>("Thrower").method<&Thrower::boom>("boom");
    return b;
}

void bump(mp::Proxy<Counter> c, int times) {
    for (int i = 0; i < times; ++i) c.call<&Counter::inc>("inc", 1);
}

class ManagerTypesP : public mp::test::StartMethodTest {};

TEST_P(ManagerTypesP, ChildrenCallRegisteredMethods) {
    mp::Manager m = counters().start(ctx());
    auto c = m.create<Counter>("Counter", 10);
    auto p1 = start(bump, c, 50);
    auto p2 = start(bump, c, 50);
    join_ok(p1);
    join_ok(p2);
    EXPECT_EQ(c.call<&Counter::get>("get"), 110);
    c.call<&Counter::rename>("rename", "shared");
    EXPECT_EQ(c.call<std::string>("name"), "shared");
    EXPECT_EQ(c.call<int>("inc", 5), 115);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ManagerTypesP,
                         ::testing::ValuesIn(mp::get_all_start_methods()),
                         [](const auto& info) { return info.param; });

TEST(ManagerTypes, ServerExceptionsComeBackPerDesign6) {
    mp::Manager m = counters().start();
    auto c = m.create<Counter>("Counter", 0);
    EXPECT_THROW(c.call<&Counter::inc>("inc", -1), std::invalid_argument);
    auto t = m.create<Thrower>("Thrower");
    try {
        t.call<int>("boom");
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_NE(e.type_name().find("Oops"), std::string::npos);
        EXPECT_STREQ(e.remote_what().c_str(), "oops");
    }
    EXPECT_THROW(c.call<int>("no_such_method"), mp::ProcessError);
    EXPECT_THROW(static_cast<void>(m.create<Counter>("NoSuchType")), mp::ProcessError);
    EXPECT_EQ(c.call<int>("get"), 0);  // the object and the server are unharmed
}

TEST(ManagerTypes, BoundNamesKeepObjects) {
    mp::Manager m;
    {
        auto q = m.Queue<std::string>();
        m.bind("jobs", q);
    }
    EXPECT_EQ(m.object_count(), 1U);
    auto q = m.lookup<mp::QueueProxy<std::string>>("jobs");
    q.put("hello");
    EXPECT_EQ(m.lookup<mp::QueueProxy<std::string>>("jobs").get(), "hello");
    EXPECT_THROW(static_cast<void>(m.lookup<mp::QueueProxy<int>>("nothing")), std::out_of_range);
}

}  // namespace
