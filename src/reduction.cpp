// The exception transport: an exception becomes {kind, type name, what, stack, errno} on the
// wire, and is rethrown on the other side as the same standard type where there is one.
#include "multiproc/reduction.hpp"

#include "demangle.hpp"
#include "exception_trace.hpp"

#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

namespace mp {

void Encoder::add_fd(int fd) {
    write_size(fds_.size());
    fds_.push_back(fd);
}

void Encoder::append_large(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
}

void Decoder::truncated(std::size_t n) const {
    throw DecodeError("multiproc: truncated message: needed " + std::to_string(n) +
                      " more bytes, " + std::to_string(remaining()) + " left");
}

void Decoder::count_too_large(std::uint64_t n) const {
    throw DecodeError("multiproc: corrupt message: a count of " + std::to_string(n) +
                      " exceeds the " + std::to_string(remaining()) + " bytes left");
}

void Decoder::over_budget(std::uint64_t n, std::size_t each) const {
    throw DecodeError("multiproc: corrupt message: " + std::to_string(n) + " elements of " +
                      std::to_string(each) + " bytes exceed what a message of " +
                      std::to_string(bytes_.size()) + " bytes may allocate (" +
                      std::to_string(budget_) + " bytes left)");
}

void Decoder::fd_missing(std::uint64_t i) const {
    throw DecodeError("multiproc: corrupt message: descriptor #" + std::to_string(i) +
                      " did not arrive");
}

void Decoder::trailing_bytes() const {
    throw DecodeError("multiproc: corrupt message: " + std::to_string(remaining()) +
                      " unexpected trailing bytes (sender and receiver disagree on the type?)");
}

}  // namespace mp

namespace mp::detail {

namespace {

enum class ExKind : std::uint8_t {
    none,
    unknown,
    exception,
    runtime_error,
    logic_error,
    invalid_argument,
    out_of_range,
    domain_error,
    length_error,
    range_error,
    overflow_error,
    underflow_error,
    bad_alloc,
    system_error,
    process_error,
    buffer_too_short,
    authentication_error,
    timeout_error,
    eof_error,
    full,
    empty,
    remote_error,
    broken_process_pool,
    cancelled_error,
    decode_error,
    usage_error,
    kCount
};

struct WireException {
    ExKind kind = ExKind::none;
    std::string type_name, what, traceback;
    int code = 0;
    std::string category;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(kind, type_name, what, traceback, code, category);
    }
};

static_assert(min_encoded_size<
                  std::tuple<ExKind, std::string, std::string, std::string, int, std::string>>() ==
              exception_min_bytes);

template <class E>
WireException wire(ExKind k, const E& e) {
    return {k, current_exception_type_name(), e.what(), last_throw_trace(), 0, {}};
}

WireException classify(const std::exception_ptr& ex) {
    // Most derived first: mp's own, then the standard families.
    try {
        std::rethrow_exception(ex);
    } catch (const RemoteError& e) {
        return {ExKind::remote_error, e.type_name(), e.remote_what(), e.traceback(), 0, {}};
    } catch (const BufferTooShort& e) {
        return wire(ExKind::buffer_too_short, e);
    } catch (const AuthenticationError& e) {
        return wire(ExKind::authentication_error, e);
    } catch (const TimeoutError& e) {
        return wire(ExKind::timeout_error, e);
    } catch (const EOFError& e) {
        return wire(ExKind::eof_error, e);
    } catch (const Full& e) {
        return wire(ExKind::full, e);
    } catch (const Empty& e) {
        return wire(ExKind::empty, e);
    } catch (const BrokenProcessPool& e) {
        return wire(ExKind::broken_process_pool, e);
    } catch (const CancelledError& e) {
        return wire(ExKind::cancelled_error, e);
    } catch (const DecodeError& e) {
        return wire(ExKind::decode_error, e);
    } catch (const ProcessError& e) {
        return wire(ExKind::process_error, e);
    } catch (const UsageError& e) {
        return wire(ExKind::usage_error, e);
    } catch (const std::system_error& e) {
        WireException w = wire(ExKind::system_error, e);
        w.code = e.code().value();
        w.category = e.code().category().name();
        return w;
    } catch (const std::invalid_argument& e) {
        return wire(ExKind::invalid_argument, e);
    } catch (const std::out_of_range& e) {
        return wire(ExKind::out_of_range, e);
    } catch (const std::domain_error& e) {
        return wire(ExKind::domain_error, e);
    } catch (const std::length_error& e) {
        return wire(ExKind::length_error, e);
    } catch (const std::logic_error& e) {
        return wire(ExKind::logic_error, e);
    } catch (const std::range_error& e) {
        return wire(ExKind::range_error, e);
    } catch (const std::overflow_error& e) {
        return wire(ExKind::overflow_error, e);
    } catch (const std::underflow_error& e) {
        return wire(ExKind::underflow_error, e);
    } catch (const std::runtime_error& e) {
        return wire(ExKind::runtime_error, e);
    } catch (const std::bad_alloc& e) {
        return wire(ExKind::bad_alloc, e);
    } catch (const std::exception& e) {
        return wire(ExKind::exception, e);
    } catch (...) {
        return {ExKind::unknown,
                current_exception_type_name(),
                "an exception not derived from std::exception",
                last_throw_trace(),
                0,
                {}};
    }
}

// Whether the thrown type is exactly the standard type we rebuild: a user's subclass of
// std::runtime_error keeps its family on the way back but its name appears in what().
bool is_exact(const WireException& w, const char* std_name) { return w.type_name == std_name; }

template <class E>
[[noreturn]] void raise(const WireException& w, const char* std_name) {
    if (is_exact(w, std_name)) throw E(w.what);
    throw E(w.type_name + ": " + w.what);
}

const std::error_category& category_named(const std::string& name) {
    if (name == std::generic_category().name()) return std::generic_category();
    return std::system_category();
}

[[noreturn]] void rethrow(const WireException& w) {
    switch (w.kind) {
        case ExKind::runtime_error: raise<std::runtime_error>(w, "std::runtime_error");
        case ExKind::logic_error: raise<std::logic_error>(w, "std::logic_error");
        case ExKind::invalid_argument: raise<std::invalid_argument>(w, "std::invalid_argument");
        case ExKind::out_of_range: raise<std::out_of_range>(w, "std::out_of_range");
        case ExKind::domain_error: raise<std::domain_error>(w, "std::domain_error");
        case ExKind::length_error: raise<std::length_error>(w, "std::length_error");
        case ExKind::range_error: raise<std::range_error>(w, "std::range_error");
        case ExKind::overflow_error: raise<std::overflow_error>(w, "std::overflow_error");
        case ExKind::underflow_error: raise<std::underflow_error>(w, "std::underflow_error");
        case ExKind::bad_alloc: throw std::bad_alloc();
        case ExKind::system_error: {
            // system_error's what() is "<what_arg>: <message>"; rebuild it from the same parts so
            // that what() reads exactly as it did in the thrower.
            const std::error_code ec(w.code, category_named(w.category));
            const std::string suffix = ": " + ec.message();
            if (w.what.size() >= suffix.size() &&
                w.what.compare(w.what.size() - suffix.size(), suffix.size(), suffix) == 0)
                throw std::system_error(ec, w.what.substr(0, w.what.size() - suffix.size()));
            throw std::system_error(ec, w.what);
        }
        case ExKind::process_error: raise<ProcessError>(w, "mp::ProcessError");
        case ExKind::buffer_too_short: throw ProcessError(w.what);
        case ExKind::authentication_error: raise<AuthenticationError>(w, "mp::AuthenticationError");
        case ExKind::timeout_error: raise<TimeoutError>(w, "mp::TimeoutError");
        case ExKind::eof_error: raise<EOFError>(w, "mp::EOFError");
        case ExKind::full: raise<Full>(w, "mp::Full");
        case ExKind::empty: raise<Empty>(w, "mp::Empty");
        case ExKind::broken_process_pool: raise<BrokenProcessPool>(w, "mp::BrokenProcessPool");
        case ExKind::cancelled_error: raise<CancelledError>(w, "mp::CancelledError");
        case ExKind::decode_error: raise<DecodeError>(w, "mp::DecodeError");
        case ExKind::usage_error: raise<UsageError>(w, "mp::UsageError");
        case ExKind::remote_error:
        case ExKind::exception:
        case ExKind::unknown:
        default: throw RemoteError(w.type_name, w.what, w.traceback);
    }
}

}  // namespace

void encode_exception(Encoder& e, const std::exception_ptr& ex) {
    e(ex ? classify(ex) : WireException{});
}

std::exception_ptr decode_exception(Decoder& d) {
    WireException w;
    d(w);
    if (w.kind == ExKind::none) return nullptr;
    if (w.kind >= ExKind::kCount)
        throw DecodeError("multiproc: corrupt message: bad exception kind");
    try {
        rethrow(w);
    } catch (...) {
        return std::current_exception();
    }
}

}  // namespace mp::detail
