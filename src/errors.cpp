#include "multiproc/errors.hpp"

#include <utility>

namespace mp {

BufferTooShort::BufferTooShort(std::vector<std::byte> message)
    : ProcessError("multiproc: buffer too short for a message of " +
                   std::to_string(message.size()) + " bytes"),
      message_(std::move(message)) {}

RemoteError::RemoteError(std::string type_name, std::string what, std::string traceback)
    : ProcessError(type_name + ": " + what +
                   (traceback.empty() ? std::string() : "\nremote stack:\n" + traceback)),
      type_name_(std::move(type_name)), what_(std::move(what)), traceback_(std::move(traceback)) {}

void throw_os_error(const char* what, int err) {
    throw std::system_error(err, std::system_category(), what);
}

}  // namespace mp
