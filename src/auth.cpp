#include "auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include "multiproc/errors.hpp"
#include "sys/random.hpp"

namespace mp::detail {
namespace {

constexpr std::size_t kMessageLength = 40;  // Python's MESSAGE_LENGTH (must exceed 20)
constexpr std::size_t kLegacyMessageLength = 20;
constexpr std::size_t kMd5Length = 16;
constexpr std::size_t kMaxDigestName = 8;  // "sha3_384"

// Python's _ALLOWED_DIGESTS.
const EVP_MD* digest_by_name(std::string_view name) {
    if (name == "md5") return EVP_md5();
    if (name == "sha256") return EVP_sha256();
    if (name == "sha384") return EVP_sha384();
    if (name == "sha3_256") return EVP_sha3_256();
    if (name == "sha3_384") return EVP_sha3_384();
    return nullptr;
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view message) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int len = 0;
    static const unsigned char kNoKey = 0;  // an empty key is a real key, not "no key"
    const void* k = key.empty() ? static_cast<const void*>(&kNoKey) : key.data();
    if (!::HMAC(md, k, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
                message.size(), out.data(), &len))
        throw AuthenticationError("multiproc: authentication: HMAC failed");
    return std::string(reinterpret_cast<const char*>(out.data()), len);
}

// Python's _get_digest_name_and_payload: an empty name means the legacy form (raw HMAC-MD5).
std::pair<std::string_view, std::string_view> digest_and_payload(std::string_view m) {
    if (m.size() == kLegacyMessageLength || m.size() == kMd5Length) return {{}, m};
    if (!m.empty() && m.front() == '{') {
        const auto close = m.find('}', 1);
        if (close != std::string_view::npos && close <= kMaxDigestName + 1) {
            const std::string_view name = m.substr(1, close - 1);
            if (digest_by_name(name)) return {name, m.substr(close + 1)};
        }
    }
    throw AuthenticationError("multiproc: authentication failed: unsupported message length, missing "
                              "digest prefix, or unsupported digest (" + std::to_string(m.size()) +
                              " bytes)");
}

}  // namespace

std::string make_challenge(AuthDigest digest) {
    const bool legacy = digest == AuthDigest::legacy_md5;
    std::string random(legacy ? kLegacyMessageLength : kMessageLength, '\0');
    sys::random_bytes(random.data(), random.size());
    return legacy ? random : "{sha256}" + random;
}

std::string respond_to_challenge(std::string_view key, std::string_view message) {
    if (message.size() < kLegacyMessageLength)
        throw AuthenticationError("multiproc: authentication failed: the challenge is too short (" +
                                  std::to_string(message.size()) + " bytes)");
    const auto [name, payload] = digest_and_payload(message);
    static_cast<void>(payload);
    if (name.empty()) return hmac(EVP_md5(), key, message);
    // The MAC covers the whole message, prefix included, so it cannot be downgraded.
    return "{" + std::string(name) + "}" + hmac(digest_by_name(name), key, message);
}

bool response_is_valid(std::string_view key, std::string_view message, std::string_view response) {
    const auto [name, mac] = digest_and_payload(response);
    const std::string expected = hmac(digest_by_name(name.empty() ? "md5" : name), key, message);
    return expected.size() == mac.size() && CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0;
}

}  // namespace mp::detail
