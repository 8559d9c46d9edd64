// mp::pickle against real Python (Debian's python3 3.11, pyenv's 3.12 and 3.13; all required):
// a Python Client talking to a multiproc Listener and a multiproc Client talking to a Python
// Listener; every shape goes both ways at protocols 2, 3, 4 and 5 and is checked on each side
// against that side's own expectation (tests/helpers/py_pickle_peer.py holds Python's), types
// included; a malformed pickle and a pickle of os.system from Python are refused and the
// connection goes on.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "helpers/python_peer.hpp"
#include "multiproc/listener.hpp"
#include "multiproc/pickle.hpp"

namespace {

namespace py = mp::py;

std::vector<std::byte> B(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

py::object minus_two_to_the_100() {
    py::bigint b;
    b.le.assign(12, std::byte{0});
    b.le.push_back(std::byte{0xf0});
    return py::object(b);
}

// The C++ side of TABLES["shapes"] in py_pickle_peer.py, item for item.
std::vector<py::object> shapes() {
    std::vector<py::object> range, dict_items;
    for (int i = 0; i < 2500; ++i) range.emplace_back(i);
    std::vector<std::pair<py::object, py::object>> big_dict;
    for (int i = 0; i < 1500; ++i) big_dict.emplace_back(i, std::to_string(i));
    std::string pairs;
    for (int i = 0; i < 200; ++i) pairs += std::string("\x00\xff", 2);
    const py::object shared = py::make_list({1, "s"});
    return {
        py::object(),
        true,
        false,
        0,
        255,
        256,
        65536,
        -1,
        -129,
        std::int64_t{1} << 31,
        -(std::int64_t{1} << 31) - 1,
        std::numeric_limits<std::int64_t>::max(),
        std::numeric_limits<std::int64_t>::min(),
        py::object(py::bigint::from_unsigned(std::numeric_limits<std::uint64_t>::max())),
        minus_two_to_the_100(),
        1.5,
        -0.0,
        std::numeric_limits<double>::infinity(),
        1e300,
        "",
        "h\xc3\xa9llo \xe2\x98\x83",
        std::string(300, 'x'),
        py::object(B("")),
        py::object(B(pairs)),
        py::object(py::bytearray{B("ba")}),
        py::object(py::bytearray{}),
        py::make_list(),
        py::make_list({1, py::make_list({2, py::make_list({3})})}),
        py::make_list(range),
        py::make_tuple(),
        py::make_tuple({1}),
        py::make_tuple({1, 2}),
        py::make_tuple({1, 2, 3}),
        py::make_tuple({1, 2, 3, "four"}),
        py::make_dict(),
        py::make_dict({{"a", 1}, {2, py::make_list({3.5, py::object()})}}),
        py::make_dict(big_dict),
        py::make_set(),
        py::make_set({1, 2}),
        py::make_frozenset(),
        py::make_frozenset({"f"}),
        py::make_dict({{"z", 1}, {"a", 2}}, true),
        py::make_exception("ValueError", {"bad", 3}),
        py::make_exception("KeyError", {"k"}),
        py::make_list({shared, shared}),
    };
}

using Typed0 = std::map<std::string, double>;
using Typed1 = std::tuple<int, std::string, std::vector<double>>;
using Typed2 = std::vector<std::vector<std::byte>>;
using Typed3 = std::set<int>;
using Typed4 = std::unordered_map<std::string, std::vector<std::tuple<int, std::string>>>;

// Sends TABLES["typed"][i] as a C++ value of type T, then reads Python's own back as a T.
template <class T>
void typed(mp::Connection& c, int i, const T& value, int protocol) {
    SCOPED_TRACE("typed " + std::to_string(i));
    c.send_py(std::tuple<const char*, int, const T&>("typed", i, value), protocol);
    const auto [ok, seen, want] = c.recv_py<std::tuple<bool, std::string, T>>();
    EXPECT_TRUE(ok) << "Python received " << seen;
    EXPECT_TRUE(want == value);
}

void exchange_everything(mp::Connection& c, int protocol) {
    const std::vector<py::object> all = shapes();
    for (std::size_t i = 0; i < all.size(); ++i) {
        SCOPED_TRACE("shape " + std::to_string(i));
        c.send_py(py::make_tuple({"shapes", static_cast<std::int64_t>(i), all[i]}), protocol);
        const py::object reply = c.recv_py();
        const auto& r = reply.as_sequence();
        ASSERT_EQ(r.size(), 3u);
        EXPECT_TRUE(r[0].as_bool()) << "Python received " << r[1].as_str();
        EXPECT_TRUE(r[2] == all[i]) << "from Python, shape " << i << " differs";
        if (i + 1 == all.size()) {  // Python's shared list arrives as one list, shared
            const auto& two = r[2].as_sequence();
            EXPECT_EQ(two[0].node<py::list>().get(), two[1].node<py::list>().get());
        }
    }
    typed(c, 0, Typed0{{"a", 1.5}, {"b", -2.0}}, protocol);
    typed(c, 1, Typed1{7, "seven", {1.0, 2.0}}, protocol);
    typed(c, 2, Typed2{B("x"), B("")}, protocol);
    typed(c, 3, Typed3{3, 4}, protocol);
    typed(c, 4, Typed4{{"k", {{1, "one"}}}}, protocol);
    // A malformed pickle and a forbidden global are refused; the connection goes on.
    c.send_py(py::make_tuple({"bad"}), protocol);
    EXPECT_THROW(c.recv_py(), mp::DecodeError);
    try {
        (void)c.recv_py();
        ADD_FAILURE() << "os.system decoded";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("posix.system"), std::string::npos) << e.what();
    }
    EXPECT_EQ(c.recv_py<std::string>(), "still here");
}

const std::string kScript = std::string(MULTIPROC_SOURCE_DIR) + "/tests/helpers/py_pickle_peer.py";

TEST(PicklePython, EveryShapeBothWaysEveryProtocolEveryInterpreter) {
    const mp::test::Interpreters pythons = mp::test::required_interpreters();
    for (const std::string& m : pythons.missing) ADD_FAILURE() << "missing interpreter: " << m;
    for (const std::string& python : pythons.found) {
        for (int protocol = 2; protocol <= 5; ++protocol) {
            SCOPED_TRACE(python + " protocol " + std::to_string(protocol));
            const std::string p = std::to_string(protocol);
            {  // A Python Client to a multiproc Listener.
                mp::Listener l(mp::Address::tcp("127.0.0.1", 0), 4, "pickle key");
                mp::test::PythonPeer peer(python, kScript,
                                          {"client", l.address().to_string(),
                                           mp::test::hex("pickle key"), p});
                mp::Connection c = l.accept();
                exchange_everything(c, protocol);
                c.close();
                EXPECT_EQ(peer.join(), 0);
            }
            {  // A multiproc Client to a Python Listener.
                mp::test::PythonPeer peer(python, kScript,
                                          {"listen", "127.0.0.1:0", mp::test::hex("pickle key"),
                                           p});
                const std::string address = peer.line();
                ASSERT_FALSE(address.empty());
                mp::Connection c = mp::Client(address, "pickle key");
                exchange_everything(c, protocol);
                c.close();
                EXPECT_EQ(peer.join(), 0);
            }
        }
    }
}

}  // namespace
