// The spawn bootstrap record (spawn.hpp): what a spawned child, and the forkserver for each of
// its children, decodes from bytes its parent wrote. Bad bytes must give mp::DecodeError.
#include <cstddef>
#include <cstdint>

#include "multiproc/errors.hpp"
#include "seeds.hpp"
#include "spawn.hpp"

namespace {

std::vector<mp::fuzz::Bytes> seeds() {
    std::vector<mp::fuzz::Bytes> out;
    mp::CurrentProcess::Info a;
    a.name = "Process-1";
    a.identity = {1};
    a.parent_pid = 100;
    a.parent_name = "MainProcess";
    out.push_back(mp::detail::encode_bootstrap(a, {}, 0));
    mp::CurrentProcess::Info b;
    b.parent_pid = 100;
    b.parent_name = "MainProcess";
    b.name = "worker";
    b.identity = {3, 1, 4};
    b.daemon = true;
    b.off_main_thread = true;
    const mp::fuzz::Bytes call(40, std::byte{7});
    out.push_back(mp::detail::encode_bootstrap(b, call, 2));
    out.push_back(mp::detail::encode_bootstrap(mp::CurrentProcess::Info{}, call, 0));
    return out;
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        (void)mp::detail::decode_bootstrap(std::span(reinterpret_cast<const std::byte*>(data),
                                                     size));
    } catch (const mp::DecodeError&) {
    }
    return 0;
}
