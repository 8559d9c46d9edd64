// mp::pickle in one process: every shape of the mapping table at protocols 2 to 5, typed and
// dynamic; pickles made by CPython (bytes recorded from Python 3.11's pickle.dumps) decoded;
// the allowlist; hostile input (truncation, lying lengths, cycles, depth, unknown opcodes).
// tests/pickle_python_test.cpp runs the same shapes against real Python interpreters.
#include "multiproc/pickle.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

namespace py = mp::py;
using mp::pickle::dumps;
using mp::pickle::loads;

std::vector<std::byte> B(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

// The bytes of a string literal, embedded zero bytes included.
template <std::size_t N>
std::vector<std::byte> L(const char (&s)[N]) {
    return B(std::string_view(s, N - 1));
}

class Protocols : public ::testing::TestWithParam<int> {};

template <class T>
T round_trip(const T& v, int protocol) {
    return loads<T>(dumps(v, protocol));
}

TEST_P(Protocols, ScalarsRoundTrip) {
    const int p = GetParam();
    EXPECT_EQ(round_trip(true, p), true);
    EXPECT_EQ(round_trip(false, p), false);
    for (std::int64_t i :
         {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{255}, std::int64_t{256},
          std::int64_t{65535}, std::int64_t{65536}, std::int64_t{-129}, std::int64_t{INT32_MAX},
          std::int64_t{INT32_MIN}, std::int64_t{INT32_MAX} + 1,
          std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()})
        EXPECT_EQ(round_trip(i, p), i);
    EXPECT_EQ(round_trip(std::numeric_limits<std::uint64_t>::max(), p),
              std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(round_trip(std::uint8_t{200}, p), 200);
    for (double d : {0.0, -0.0, 1.5, -2.25e300, std::numeric_limits<double>::infinity()})
        EXPECT_EQ(round_trip(d, p), d);
    EXPECT_TRUE(std::isnan(round_trip(std::nan(""), p)));
    EXPECT_EQ(round_trip(std::string(""), p), "");
    EXPECT_EQ(round_trip(std::string("h\xc3\xa9llo"), p), "h\xc3\xa9llo");
    EXPECT_EQ(round_trip(std::string(300, 'x'), p), std::string(300, 'x'));
    EXPECT_EQ(round_trip(B(""), p), B(""));
    EXPECT_EQ(round_trip(B(std::string("\x00\x7f\x80\xff", 4)), p),
              B(std::string("\x00\x7f\x80\xff", 4)));
    EXPECT_EQ(round_trip(py::bytearray{B("ab\xff")}, p), py::bytearray{B("ab\xff")});
    // Protocol 2 spells these as bytearray(_codecs.encode(text, 'latin1')), the text twice as
    // long as the bytes: copies of more than the input's size must still decode.
    const py::bytearray high{B(std::string(1000, '\xff'))};
    EXPECT_EQ(round_trip(high, p), high);
    EXPECT_EQ(loads<std::monostate>(dumps(std::monostate{}, p)), std::monostate{});
    EXPECT_EQ(round_trip(std::optional<int>(), p), std::nullopt);
    EXPECT_EQ(round_trip(std::optional<int>(3), p), 3);
}

TEST_P(Protocols, ContainersRoundTrip) {
    const int p = GetParam();
    using Nested = std::map<std::string, std::vector<std::tuple<int, double, std::string>>>;
    const Nested nested{{"a", {{1, 2.5, "x"}, {2, -1.0, ""}}}, {"b", {}}};
    EXPECT_EQ(round_trip(nested, p), nested);
    const std::vector<std::int64_t> many(2500, 7);
    EXPECT_EQ(round_trip(many, p), many);
    EXPECT_EQ(round_trip(std::set<std::string>{"x", "y"}, p), (std::set<std::string>{"x", "y"}));
    EXPECT_EQ(round_trip(std::set<int>{}, p), std::set<int>{});
    const std::unordered_map<std::string, double> um{{"k", 1.0}, {"l", 2.0}};
    EXPECT_EQ(round_trip(um, p), um);
    EXPECT_EQ(round_trip(std::tuple<>{}, p), std::tuple<>{});
    const auto t5 = std::make_tuple(1, std::string("two"), 3.0, false, std::vector<int>{5});
    EXPECT_EQ(round_trip(t5, p), t5);
    EXPECT_EQ(round_trip(std::pair<int, int>{1, 2}, p), (std::pair<int, int>{1, 2}));
    EXPECT_EQ(round_trip(std::vector<std::vector<std::byte>>{B("a"), B("")}, p),
              (std::vector<std::vector<std::byte>>{B("a"), B("")}));
}

py::object every_kind() {
    py::object shared = py::make_list({1, "s"});
    return py::make_list({
        py::object(),
        true,
        std::int64_t{-5},
        py::object(py::bigint::from_unsigned(std::numeric_limits<std::uint64_t>::max())),
        2.5,
        "text",
        py::object(B("by\x80")),
        py::object(py::bytearray{B("ba")}),
        py::make_tuple({1, py::make_tuple()}),
        py::make_dict({{"k", shared}, {3, py::make_list()}}),
        py::make_dict({{"z", 1}, {"a", 2}}, true),
        py::make_set({1, 2}),
        py::make_frozenset({"f"}),
        py::make_exception("ValueError", {"bad", 3}),
        shared,
    });
}

TEST_P(Protocols, DynamicObjectsRoundTripAndKeepSharing) {
    const int p = GetParam();
    const py::object v = every_kind();
    const py::object back = loads(dumps(v, p));
    EXPECT_EQ(back, v);
    // The list shared by the dict and the last item is one list after the trip, too.
    const auto& items = back.as_sequence();
    const auto& inner = items[9].as_dict()[0].second.node<py::list>();
    EXPECT_EQ(inner.get(), items.back().node<py::list>().get());
}

TEST_P(Protocols, AValueSharedManyTimesIsWrittenOnce) {
    const py::object big(std::string(10000, 'x'));
    std::vector<py::object> items(1000, big);
    const auto bytes = dumps(py::make_list(items), GetParam());
    EXPECT_LT(bytes.size(), 20000u);
    EXPECT_EQ(loads(bytes).as_sequence().size(), 1000u);
}

INSTANTIATE_TEST_SUITE_P(All, Protocols, ::testing::Values(2, 3, 4, 5),
                         [](const auto& info) { return "protocol" + std::to_string(info.param); });

TEST(Pickle, DecodesWhatCPythonWrites) {
    // pickle.dumps([ValueError('x', 1), b'ab', b'', bytearray(b'q'), {1, 2}, frozenset([3]),
    //               collections.OrderedDict(a=1)], protocol=p) from Python 3.11.
    const auto p2 =
        L("\x80\x02]q\x00(cexceptions\nValueError\nq\x01X\x01\x00\x00\x00xq\x02K\x01\x86q\x03Rq\x04"
          "c_codecs\nencode\nq\x05X\x02\x00\x00\x00"
          "abq\x06X\x06\x00\x00\x00latin1q\x07\x86q\x08Rq\t"
          "c__builtin__\nbytes\nq\n)Rq\x0b"
          "c__builtin__\nbytearray\nq\x0ch\x05X\x01\x00\x00\x00qq\rh\x07\x86q\x0eRq\x0f\x85q\x10Rq"
          "\x11"
          "c__builtin__\nset\nq\x12]q\x13(K\x01K\x02"
          "e\x85q\x14Rq\x15"
          "c__builtin__\nfrozenset\nq\x16]"
          "q\x17K\x03"
          "a\x85q\x18Rq\x19"
          "ccollections\nOrderedDict\nq\x1a)Rq\x1bX\x01\x00\x00\x00"
          "aq\x1c"
          "K\x01se.");
    const auto p5 = L("\x80\x05\x95q\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x08"
                      "builtins\x94\x8c\nValueError\x94"
                      "\x93\x94\x8c\x01x\x94K\x01\x86\x94R\x94"
                      "C\x02"
                      "ab\x94"
                      "C\x00\x94\x96\x01\x00\x00\x00\x00\x00"
                      "\x00\x00q\x94\x8f\x94(K\x01K\x02\x90(K\x03\x91\x94\x8c\x0b"
                      "collections\x94\x8c\x0b"
                      "OrderedDict\x94\x93\x94)R\x94\x8c\x01"
                      "a\x94K\x01se.");
    const py::object want = py::make_list({
        py::make_exception("ValueError", {"x", 1}),
        py::object(B("ab")),
        py::object(B("")),
        py::object(py::bytearray{B("q")}),
        py::make_set({1, 2}),
        py::make_frozenset({3}),
        py::make_dict({{"a", 1}}, true),
    });
    EXPECT_EQ(loads(p2), want);
    EXPECT_EQ(loads(p5), want);
}

TEST(Pickle, ProtocolFiveBuffersTravelOutOfBand) {
    const auto data = B(std::string(1000, 'd'));
    mp::pickle::buffer_sink sink;
    const auto bytes = dumps(std::vector<py::pickle_buffer>{{data, true}, {data, false}}, 5, &sink);
    ASSERT_EQ(sink.size(), 2u);
    EXPECT_LT(bytes.size(), data.size());
    const py::object back = loads(bytes, sink);
    EXPECT_EQ(back, py::make_list({py::object(data), py::object(py::bytearray{data})}));
    EXPECT_THROW(loads(bytes), mp::DecodeError);  // the buffers are missing
    // In band: bytes and bytearray; below protocol 5 a buffer is an error, as in Python.
    EXPECT_EQ(loads(dumps(py::pickle_buffer{data, true}, 5)), py::object(data));
    EXPECT_THROW(dumps(py::pickle_buffer{data, true}, 4), mp::UsageError);
}

TEST(Pickle, RefusesGlobalsOffTheAllowlistByName) {
    // pickle.dumps(os.system) at protocol 2 and a protocol-4 STACK_GLOBAL of posix.system.
    try {
        (void)loads(B("\x80\x02"
                      "cposix\nsystem\nq\x00."));
        FAIL() << "no error";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("posix.system"), std::string::npos) << e.what();
    }
    try {
        (void)loads(B("\x80\x04\x8c\x05posix\x8c\x06system\x93(\x8c\x02idtR."));
        FAIL() << "no error";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("posix.system"), std::string::npos) << e.what();
    }
    // An allowlisted class is not a licence to call it with anything.
    EXPECT_THROW(loads(B("\x80\x02"
                         "c__builtin__\nset\nK\x01\x85R.")),
                 mp::DecodeError);
}

TEST(Pickle, RefusesHostileInput) {
    const std::vector<std::string> bad = {
        "",                                                   // nothing
        "\x80\x04",                                           // no STOP
        std::string("\x80\x04X\xff\xff\xff\x7f", 7) + "ab.",  // a length beyond the data
        std::string("\x80\x04\x95\xff\xff\xff\xff\x00\x00\x00\x00N.", 13),  // a lying frame
        "\x80\x04N.N",                                                      // bytes after STOP
        "\x80\x04"
        "a.",              // APPEND on nothing
        "\x80\x04N(e.",    // APPENDS on None
        "\x80\x04h\x05.",  // a memo reference to nothing
        std::string("\x80\x04]\x94h\x00"
                    "a.",
                    8),                                   // a list that contains itself
        "\x80\x04I1\n.",                                  // protocol-0 INT: unsupported
        std::string("\x80\x04\x8b\x00\x00\x00\x80.", 8),  // a negative LONG4 length
        "\x80\x06N.",                                     // an unknown protocol
        "\x80\x04(u.",                                    // SETITEMS without a dict
        "\x80\x04}K\x01u.",                               // SETITEMS without its mark
    };
    for (const std::string& s : bad) EXPECT_THROW(loads(B(s)), mp::DecodeError) << s;
    // Nesting: a thousand levels decode, one more is refused (and nothing overflows).
    const auto nest = [](std::size_t n) {
        std::string s = "\x80\x04";
        s += std::string(n, ']');
        s += std::string(n - 1, 'a');
        return s + ".";
    };
    EXPECT_NO_THROW(loads(B(nest(mp::pickle::max_depth))));
    EXPECT_THROW(loads(B(nest(mp::pickle::max_depth + 1))), mp::DecodeError);
    EXPECT_THROW(loads(B(nest(200000))), mp::DecodeError);
    // A cycle made late, through the memo, is refused too (and leaks nothing under ASan).
    EXPECT_THROW(loads(L("\x80\x04]\x94]\x94"
                         "ah\x01h\x00"
                         "a0.")),
                 mp::DecodeError);
    // A cycle the result does not reach (left on the stack under it, or only in the memo) is
    // dropped with the decoder, as Python drops it, and leaks nothing under ASan (found by
    // pickle_fuzz).
    EXPECT_TRUE(loads(L("\x80\x04]\x94h\x00"
                        "aN."))
                    .is_none());
    EXPECT_EQ(loads(L("\x80\x04]\x94h\x00"
                      "a0K\x07.")),
              py::object(std::int64_t{7}));
}

TEST(Pickle, TypedDecodingSaysWhatDidNotFit) {
    const auto bytes = dumps(std::vector<std::string>{"a"});
    try {
        (void)loads<std::vector<int>>(bytes);
        FAIL() << "no error";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("expected int, got str"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(loads<std::int8_t>(dumps(300)), mp::DecodeError);
    EXPECT_THROW(loads<unsigned>(dumps(-1)), mp::DecodeError);
    EXPECT_THROW((loads<std::tuple<int, int>>(dumps(std::tuple<int>{1}))), mp::DecodeError);
    EXPECT_THROW(loads<std::int64_t>(dumps(std::numeric_limits<std::uint64_t>::max())),
                 mp::DecodeError);
    EXPECT_EQ(loads<double>(dumps(3)), 3.0);
}

TEST(Pickle, ManagerTokenDecodesAndEncodesAsPythonDoes) {
    // pickle.dumps(Token('dict', ('127.0.0.1', 5), '7f'), protocol=2) from Python 3.11.
    const auto token = L("\x80\x02"
                         "cmultiprocessing.managers\nToken\nq\x00)\x81q\x01X\x04\x00\x00\x00"
                         "dictq\x02"
                         "X\t\x00\x00\x00"
                         "127.0.0.1q\x03K\x05\x86q\x04X\x02\x00\x00\x00"
                         "7fq\x05\x87q\x06"
                         "b.");
    const py::object t = loads(token);
    const auto& inst = t.node<py::instance>();
    EXPECT_EQ(inst->cls.name, "Token");
    ASSERT_TRUE(inst->state);
    EXPECT_EQ(*inst->state, py::make_tuple({"dict", py::make_tuple({"127.0.0.1", 5}), "7f"}));
    EXPECT_EQ(loads(dumps(t, 2)), t);
}

}  // namespace

namespace {

// The fast path for flat pickles decides exactly what the general decoder decides.
TEST(Pickle, SharedNodesCompareInLinearTime) {
    // [a, a] with a = [b, b] ... 64 levels: 2^64 leaves unfolded, 64 nodes shared. Two such
    // values built apart (and one decoded from a pickle whose memo shares the nodes) compare
    // at once; a different leaf is still found (pickle_fuzz found the exponential comparison).
    const auto dag = [](std::int64_t leaf) {
        py::object o(leaf);
        for (int i = 0; i < 64; ++i)
            o = py::make_list({o, py::make_tuple({o}), py::make_dict({{i, o}})});
        return o;
    };
    EXPECT_EQ(dag(1), dag(1));
    EXPECT_FALSE(dag(1) == dag(2));
    EXPECT_EQ(loads(dumps(dag(1), 4)), dag(1));
    // Python's pickle writes the shared nodes once; so does dumps.
    EXPECT_LT(dumps(dag(1), 4).size(), 64u * 64u);
}

TEST(Pickle, FlatFastPathAgreesWithTheGeneralDecoder) {
    using mp::pickle::detail::convert;
    using mp::pickle::detail::load_flat;
    std::vector<std::int64_t> ints;
    for (std::int64_t i = -70000; i < 70000; i += 7) ints.push_back(i);
    ints.push_back(std::numeric_limits<std::int64_t>::min());
    for (int p = 2; p <= 5; ++p) {
        const auto bytes = dumps(ints, p);
        std::vector<std::int64_t> flat;
        EXPECT_TRUE(load_flat(bytes, flat)) << p;
        EXPECT_EQ(flat, ints);
        EXPECT_EQ(flat, convert<std::vector<std::int64_t>>(loads(bytes)));
        const std::map<std::string, double> d{{"a", 1.5}, {"b", 2}};
        std::vector<std::pair<std::string, double>> entries;
        EXPECT_TRUE(load_flat(dumps(d, p), entries)) << p;
        EXPECT_EQ(entries.size(), 2u);
    }
    // CPython's pickle.dumps({'a': 1.5, 'b': 2.0}) (keys memoized): flat too.
    std::vector<std::pair<std::string, double>> entries;
    EXPECT_TRUE(load_flat(L("\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01"
                            "a\x94G?"
                            "\xf8\x00\x00\x00\x00\x00\x00\x8c\x01"
                            "b\x94G@\x00\x00\x00\x00\x00"
                            "\x00\x00u."),
                          entries));
    // Not flat: the general decoder decides (a bool is no float; a nested list; a lying frame).
    std::vector<double> doubles;
    EXPECT_FALSE(load_flat(dumps(std::vector<bool>{true}), doubles));
    EXPECT_THROW(loads<std::vector<double>>(dumps(std::vector<bool>{true})), mp::DecodeError);
    EXPECT_FALSE(load_flat(dumps(std::vector<std::vector<int>>{{1}}), ints));
    EXPECT_FALSE(load_flat(L("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00]."), ints));
    EXPECT_THROW(
        loads<std::vector<std::int64_t>>(L("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00].")),
        mp::DecodeError);
}

}  // namespace

namespace {

// set(l) on one memoized list, again and again: a few bytes a call, each a copy of all of l.
TEST(Pickle, CallsThatCopyAreBoundedByTheInput) {
    std::string s("\x80\x02]q\x00(", 6);
    const std::string call("c__builtin__\nset\nh\x00\x85R0", 22);
    for (int i = 0; i < 200; ++i) s += "K\x01";
    s += "e";
    std::string calls;
    for (int i = 0; i < 2000; ++i) calls += call;
    EXPECT_THROW(loads(B(s + calls + ".")), mp::DecodeError);
    // A few such calls are fine.
    EXPECT_NO_THROW(loads(B(s + call + ".")));
}

}  // namespace
