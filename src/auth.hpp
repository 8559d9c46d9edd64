// Python's connection authentication (multiprocessing.connection deliver_challenge /
// answer_challenge), the part that is pure computation: the challenge bytes, the HMAC
// response, and its constant-time check. src/listener.cpp runs the exchange over a Connection.
//
//   challenge message  = "#CHALLENGE#" + M
//       M (3.12+)      = "{sha256}" + 40 random bytes      M (<= 3.11) = 20 random bytes
//   response           = "{" digest "}" + HMAC-digest(key, M)   or, for a 20-byte M or from a
//                        legacy peer, the raw 16-byte HMAC-MD5(key, M)
//   verdict            = "#WELCOME#" or "#FAILURE#"
#pragma once

#include <string>
#include <string_view>

#include "multiproc/listener.hpp"

namespace mp::detail {

inline constexpr std::string_view kChallenge = "#CHALLENGE#";
inline constexpr std::string_view kWelcome = "#WELCOME#";
inline constexpr std::string_view kFailure = "#FAILURE#";
/// The longest message a peer may send before it is authenticated (Python's recv_bytes(256)).
inline constexpr std::size_t kMaxHandshakeMessage = 256;

/// A fresh challenge message M (without the "#CHALLENGE#" prefix).
std::string make_challenge(AuthDigest digest);
/// The response to challenge message M under key; mp::AuthenticationError when M is too short
/// or names a digest Python does not allow.
std::string respond_to_challenge(std::string_view key, std::string_view message);
/// Whether `response` answers challenge message M under key (constant time in the digest);
/// mp::AuthenticationError for a malformed response or a digest Python does not allow.
bool response_is_valid(std::string_view key, std::string_view message, std::string_view response);

}  // namespace mp::detail
