// A queue's shared memory (queue_layout.hpp) as a corrupt or hostile peer may leave it. A fresh
// queue (bound and contents chosen by the first input byte) has bytes of its header, ring slots,
// first chunk and extent overwritten from the input, then is attached anew and used with
// non-blocking calls. Each call must work or throw mp::ProcessError ("queue memory is
// corrupt"); never crash, hang or read outside the queue. The process-shared mutexes are left
// alone: a lock word that says "held" is what a live holder looks like (glibc's, not ours).
//
// Input: [config][patches: u16 where, u8 value]...
//   config bits 0-1: maxsize 0 (unbounded), 1, 3 or 8; bits 2-4: small items put first;
//   bit 5: a 20 KiB item (an extent); bit 6: a 1 KiB item (a chunk record) put first.
#include <fcntl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "multiproc/errors.hpp"
#include "multiproc/queues.hpp"
#include "queue_layout.hpp"
#include "seeds.hpp"
#include "sys/mapping.hpp"

namespace ql = mp::detail::queue_layout;
using mp::detail::Deadline;

namespace {

// The bytes the patches may reach: [offset, offset + size) pieces of the queue's memory.
std::vector<std::pair<std::size_t, std::size_t>> windows(std::uint64_t ring_cap) {
    const std::size_t mutexes[] = {offsetof(ql::Shared, prod_mu), offsetof(ql::Shared, cons_mu),
                                   offsetof(ql::Shared, alloc_mu)};
    std::vector<std::pair<std::size_t, std::size_t>> w;
    std::size_t at = 0;
    for (std::size_t m : mutexes) {
        w.emplace_back(at, m - at);
        at = m + sizeof(pthread_mutex_t);
    }
    w.emplace_back(at, sizeof(ql::Shared) - at);
    w.emplace_back(ql::slot_offset(0), 16 * ql::kSlot);  // the first slots: state, length, bytes
    const std::size_t ring_end =
        ql::kChunk + ((ring_cap * ql::kSlot + ql::kChunk - 1) & ~(ql::kChunk - 1));
    w.emplace_back(ring_end, 2048);              // the first chunk: header and first records
    w.emplace_back(ring_end + ql::kChunk, 256);  // the next storage: the extent's header
    return w;
}

void fill(const void* ctx, std::byte* dst, std::size_t n) {
    std::memset(dst, *static_cast<const int*>(ctx), n);
}
void read(void*, const std::byte*, std::size_t) {}

template <class F>
void tolerate(F f) {
    try {
        f();
    } catch (const mp::ProcessError&) {
    } catch (const std::system_error& e) {
        // A rewritten allocation mark can make the queue look full to its last byte.
        if (e.code() != std::errc::not_enough_memory) throw;
    }
}

std::vector<mp::fuzz::Bytes> seeds() {
    std::vector<mp::fuzz::Bytes> out;
    for (std::uint8_t config : {0x00, 0x05, 0x0e, 0x21, 0x43, 0x7f}) {
        out.push_back({std::byte{config}});
        // A patch of the ring capacity, of slot 0's state word, and of the first record.
        out.push_back({std::byte{config}, std::byte{32}, std::byte{0}, std::byte{0}});
        const auto slot =
            static_cast<std::uint16_t>(sizeof(ql::Shared) - 3 * sizeof(pthread_mutex_t));
        mp::fuzz::Bytes b{std::byte{config}};
        mp::fuzz::append(b, slot);
        b.push_back(std::byte{3});
        out.push_back(b);
    }
    return out;
}

}  // namespace

MULTIPROC_FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t config = data[0];
    const std::int64_t bounds[] = {0, 1, 3, 8};
    const std::int64_t maxsize = bounds[config & 3];
    const auto now = [] { return Deadline(mp::Timeout(std::chrono::seconds(0))); };

    mp::detail::QueueHandle q(maxsize);
    int v = 1;
    for (int i = 0; i < ((config >> 2) & 7); ++i) (void)q.put(8, fill, &v, now());
    if (config & 0x20) (void)q.put(20 << 10, fill, &v, now());
    if (config & 0x40) (void)q.put(1 << 10, fill, &v, now());

    mp::Encoder e;
    q.save(e);
    const int fd = e.fds().at(0);
    const std::uint64_t ring_cap =
        maxsize > 0 ? static_cast<std::uint64_t>(maxsize) : ql::kRingUnbounded;
    const auto win = windows(ring_cap);
    std::size_t total = 0, end = 0;
    for (auto [off, n] : win) {
        total += n;
        end = std::max(end, off + n);
    }
    {
        auto map = mp::sys::Mapping::map_shared(fd, end);
        for (std::size_t i = 1; i + 3 <= size; i += 3) {
            std::uint16_t where;
            std::memcpy(&where, data + i, sizeof where);
            std::size_t k = where % total;
            for (auto [off, n] : win) {
                if (k < n) {
                    map.data()[off + k] = static_cast<std::byte>(data[i + 2]);
                    break;
                }
                k -= n;
            }
        }
    }

    // A process that attaches now (the header is checked), and the creator, which attached
    // before (its copy of the header is compared on every call).
    mp::detail::UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    mp::Decoder d(e.bytes(), std::span(&copy, 1));
    mp::detail::QueueHandle fresh;
    std::vector<mp::detail::QueueHandle*> handles{&q};
    tolerate([&] {
        fresh.load(d);
        handles.insert(handles.begin(), &fresh);
    });
    for (mp::detail::QueueHandle* h : handles) {
        tolerate([&] { (void)h->qsize(); });
        for (int i = 0; i < 3; ++i) tolerate([&] { (void)h->get(read, nullptr, now()); });
        tolerate([&] { (void)h->put(8, fill, &v, now()); });
        tolerate([&] { (void)h->put(20 << 10, fill, &v, now()); });
        tolerate([&] { (void)h->put(1 << 10, fill, &v, now()); });
        for (int i = 0; i < 4; ++i) tolerate([&] { (void)h->get(read, nullptr, now()); });
        tolerate([&] { (void)h->qsize(); });
    }
    return 0;
}
