#include "multiproc/shared_memory.hpp"

#include <cstdio>
#include <stdexcept>

#include "resource_tracker.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"
#include "sys/process.hpp"
#include "sys/random.hpp"
#include "sys/shm.hpp"
#include "sys/syscall.hpp"

namespace mp {

struct SharedMemory::Impl {
    std::string name;
    std::size_t size = 0;
    detail::UniqueFd fd;
    sys::Mapping map;
};

namespace {

std::string normalize(std::string_view name) {
    if (!name.empty() && name.front() == '/') name.remove_prefix(1);
    if (name.empty() || name.size() > 240 || name.find('/') != std::string_view::npos ||
        name == "." || name == "..")
        throw std::invalid_argument("multiproc: SharedMemory: invalid name '" + std::string(name) +
                                    "' (1 to 240 characters, no '/' after the first)");
    return std::string(name);
}

std::string generated_name() {
    unsigned char r[6];
    sys::random_bytes(r, sizeof r);
    char buf[64];
    std::snprintf(buf, sizeof buf, "mp_%d_%02x%02x%02x%02x%02x%02x",
                  static_cast<int>(sys::current_pid()), r[0], r[1], r[2], r[3], r[4], r[5]);
    return buf;
}

[[noreturn]] void fail(const char* call, const std::string& name, int err) {
    throw_os_error(("multiproc: SharedMemory '" + name + "': " + call).c_str(), err);
}

}  // namespace

SharedMemory::SharedMemory(std::string_view name, bool create, std::size_t size, bool track)
    : impl_(std::make_shared<Impl>()) {
    Impl& im = *impl_;
    if (create) {
        if (size == 0)
            throw std::invalid_argument(
                "multiproc: SharedMemory: 'size' must be positive when creating");
        const bool generate = name.empty();
        for (int attempt = 0;; ++attempt) {
            im.name = generate ? generated_name() : normalize(name);
            const int fd = sys::shm_open_fd(im.name, true);
            if (fd >= 0) {
                im.fd.reset(fd);
                break;
            }
            if (fd == -EEXIST && generate && attempt < 100) continue;
            fail("shm_open", im.name, -fd);
        }
        // Registered before anything else can fail or be interrupted, so that from here on a
        // SIGKILL leaves nothing behind.
        if (track) detail::resource_tracker::register_name(im.name);
        try {
            sys::resize_file(im.fd.get(), size);
            im.map = sys::Mapping::map_shared(im.fd.get(), size);
        } catch (...) {
            static_cast<void>(sys::shm_unlink_name(im.name));
            if (track) detail::resource_tracker::unregister_name(im.name);
            throw;
        }
        im.size = size;
    } else {
        im.name = normalize(name);
        const int fd = sys::shm_open_fd(im.name, false);
        if (fd < 0) {
            const int err = -fd;
            if (err == ENOENT)
                throw std::system_error(err, std::generic_category(),
                                        "multiproc: SharedMemory: no segment named '" + im.name +
                                            "'");
            fail("shm_open", im.name, err);
        }
        im.fd.reset(fd);
        im.size = sys::file_size(fd);
        if (im.size == 0)
            throw std::invalid_argument("multiproc: SharedMemory '" + im.name + "' has size 0");
        im.map = sys::Mapping::map_shared(fd, im.size);
    }
}


const std::string& SharedMemory::name() const {
    static const std::string empty;
    return impl_ ? impl_->name : empty;
}

std::size_t SharedMemory::size() const { return impl_ ? impl_->size : 0; }

std::span<std::byte> SharedMemory::buf() const {
    return impl_ ? impl_->map.bytes() : std::span<std::byte>();
}

void SharedMemory::close() noexcept {
    if (!impl_) return;
    impl_->map.reset();
    impl_->fd.reset();
}

void SharedMemory::unlink() {
    if (!impl_) throw UsageError("multiproc: SharedMemory::unlink on an empty handle");
    if (const int r = sys::shm_unlink_name(impl_->name); r != 0)
        fail("shm_unlink", impl_->name, -r);
    detail::resource_tracker::unregister_name(impl_->name);
}

void SharedMemory::save(Encoder& e) const {
    if (!impl_ || !impl_->fd)
        throw UsageError("multiproc: cannot send a closed or empty SharedMemory handle");
    e(impl_->name);
    e.write_size(impl_->size);
    e.add_fd(impl_->fd.get());
    const int tracker = detail::resource_tracker::fd();
    e(tracker >= 0);
    if (tracker >= 0) e.add_fd(tracker);
}

void SharedMemory::load(Decoder& d) {
    auto im = std::make_shared<Impl>();
    d(im->name);
    im->size = d.read_size();
    im->fd = d.take_fd();
    bool has_tracker = false;
    d(has_tracker);
    if (has_tracker) detail::resource_tracker::adopt(d.take_fd());
    if (im->size == 0 || sys::file_size(im->fd.get()) < im->size)
        throw DecodeError("multiproc: corrupt message: SharedMemory larger than its segment");
    im->map = sys::Mapping::map_shared(im->fd.get(), im->size);
    impl_ = std::move(im);
}

}  // namespace mp
