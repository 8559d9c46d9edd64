// multiproc errors: Python's multiprocessing exceptions, on top of the standard hierarchy.
//
//   std::runtime_error
//     mp::ProcessError                 base of everything multiproc throws itself
//       mp::BufferTooShort             recv_bytes_into: the buffer is too small (carries the message)
//       mp::AuthenticationError        wrong authkey on a Listener/Client handshake
//       mp::TimeoutError               a blocking call ran out of time
//       mp::EOFError                   the peer closed the channel
//       mp::Full / mp::Empty           queue full / empty
//       mp::RemoteError                an exception of a non-standard type thrown in another process
//       mp::BrokenProcessPool          a pool that can no longer run tasks
//       mp::CancelledError             a future that was cancelled
//       mp::DecodeError                bytes that do not decode (truncated, oversized, corrupt)
//
//   std::exception
//     mp::KeyboardInterrupt            Ctrl-C under mp::SigintGuard (include/multiproc/signals.hpp)
//
// OS failures are std::system_error carrying the errno and the name of the failed call.
// Misuse (start twice, use after close) is std::logic_error (mp::UsageError).
#pragma once

#include <cerrno>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace mp {

/// Base of every error multiproc raises itself (Python's multiprocessing.ProcessError).
class ProcessError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// recv_bytes_into found the buffer too small; message() holds the whole message.
class BufferTooShort : public ProcessError {
public:
    /// Carries the complete message that did not fit.
    explicit BufferTooShort(std::vector<std::byte> message);
    /// The message that did not fit, complete.
    const std::vector<std::byte>& message() const noexcept { return message_; }

private:
    std::vector<std::byte> message_;
};

/// A connection handshake failed: wrong or missing authkey.
class AuthenticationError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// A blocking call ran out of time (AsyncResult::get, Barrier::wait, ...).
class TimeoutError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// The other end closed the channel (Connection::recv on a closed peer).
class EOFError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// A bounded queue stayed full for the whole timeout (Python's queue.Full).
class Full : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// A queue stayed empty for the whole timeout (Python's queue.Empty).
class Empty : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// An exception of a type that has no standard counterpart, thrown in another process.
class RemoteError : public ProcessError {
public:
    /// type_name: the remote exception's demangled type; what: its what(); traceback: remote stack.
    RemoteError(std::string type_name, std::string what, std::string traceback);
    /// Demangled name of the remote exception's type.
    const std::string& type_name() const noexcept { return type_name_; }
    /// The remote exception's what().
    const std::string& remote_what() const noexcept { return what_; }
    /// The remote stack trace, one frame a line, or empty where none was available.
    const std::string& traceback() const noexcept { return traceback_; }

private:
    std::string type_name_, what_, traceback_;
};

/// A process pool can no longer run tasks (Python's concurrent.futures BrokenProcessPool).
class BrokenProcessPool : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// The result of a cancelled future was asked for.
class CancelledError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// Bytes received from another process do not decode: truncated, oversized or corrupt.
class DecodeError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// SIGINT (Ctrl-C) ended a blocking call while the program held an mp::SigintGuard. Like
/// Python's KeyboardInterrupt, which is not an Exception, it is not an mp::ProcessError nor a
/// std::runtime_error: handlers for the library's failures (catch (const mp::ProcessError&),
/// catch (const std::runtime_error&)) let it through to the code that asked for it. It is a
/// std::exception, so what() and std::terminate's message still name it.
class KeyboardInterrupt : public std::exception {
public:
    /// "KeyboardInterrupt".
    const char* what() const noexcept override { return "KeyboardInterrupt"; }
};

/// Misuse of the API (start twice, use after close, wrong direction): a programming error.
class UsageError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// Throws std::system_error{err, what}: the one way OS failures leave multiproc.
[[noreturn]] void throw_os_error(const char* what, int err = errno);

}  // namespace mp
