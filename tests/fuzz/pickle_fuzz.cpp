// libFuzzer harness for mp::pickle::loads, the decoder of pickles from Python peers (DESIGN.md
// 11). mp::DecodeError is the right answer to bad bytes; anything else (a crash, a sanitizer
// report, a leak from a cycle, another exception, an allocation out of proportion to the
// input) is a bug. A pickle that decodes must survive a round trip at every protocol (dumps,
// then loads again gives an equal value) and typed conversions must fail only with DecodeError.
//
// Seeds: MULTIPROC_FUZZ_SEEDS=<dir> pickle_fuzz writes one pickle of a value holding every kind
// at each protocol, plus pickles recorded from CPython (protocol 2 spellings, a Token); the
// committed corpus also holds cpython-* files: pickle.dumps of a list of every shape at each
// protocol, written by Python 3.11.
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "fuzz/seeds.hpp"
#include "multiproc/pickle.hpp"

namespace {

namespace py = mp::py;
using mp::fuzz::Bytes;

Bytes bytes_of(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

std::vector<Bytes> seeds() {
    const py::object shared = py::make_list({1, "s"});
    const py::object every = py::make_list({
        py::object(),
        true,
        std::int64_t{-70000},
        py::object(py::bigint::from_unsigned(std::numeric_limits<std::uint64_t>::max())),
        2.5,
        "text",
        py::object(bytes_of("by\x80")),
        py::object(py::bytearray{bytes_of("ba")}),
        py::make_tuple({1, py::make_tuple({2, 3, 4, 5})}),
        py::make_dict({{"k", shared}, {3, py::make_list()}}),
        py::make_dict({{"z", 1}}, true),
        py::make_set({1, 2}),
        py::make_frozenset({"f"}),
        py::make_exception("ValueError", {"bad", 3}),
        shared,
    });
    std::vector<Bytes> out;
    for (int p = 2; p <= 5; ++p) out.push_back(mp::pickle::dumps(every, p));
    const Bytes data = bytes_of("buffer");
    out.push_back(mp::pickle::dumps(py::pickle_buffer{data, false}, 5));
    // pickle.dumps(Token('dict', ('127.0.0.1', 5), '7f'), protocol=2), from CPython 3.11.
    const char token[] = "\x80\x02"
                         "cmultiprocessing.managers\nToken\nq\x00)\x81q\x01X\x04\x00\x00\x00"
                         "dictq\x02"
                         "X\t\x00\x00\x00"
                         "127.0.0.1q\x03K\x05\x86q\x04X\x02\x00\x00\x00"
                         "7fq\x05\x87q\x06"
                         "b.";
    out.push_back(bytes_of(std::string_view(token, sizeof token - 1)));
    return out;
}

void check_round_trip(const py::object& v) {
    for (int p = 2; p <= 5; ++p) {
        const py::object again = mp::pickle::loads(mp::pickle::dumps(v, p));
        if (!(again == v)) std::abort();  // a value that does not survive its own encoding
    }
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    py::object v;
    try {
        v = mp::pickle::loads(bytes);
    } catch (const mp::DecodeError&) {
        return 0;
    }
    check_round_trip(v);
    try {
        (void)mp::pickle::detail::convert<std::vector<std::string>>(v);
    } catch (const mp::DecodeError&) {
    }
    try {
        (void)mp::pickle::detail::convert<std::map<std::string, double>>(v);
    } catch (const mp::DecodeError&) {
    }
    return 0;
}
