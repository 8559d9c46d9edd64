#include "auth.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <memory>

#include "multiproc/errors.hpp"
#include "sys/random.hpp"

namespace mp::detail {
namespace {

constexpr std::size_t kMessageLength = 40;  // Python's MESSAGE_LENGTH (must exceed 20)
constexpr std::size_t kLegacyMessageLength = 20;
constexpr std::size_t kMd5Length = 16;
constexpr std::size_t kMaxDigestName = 8;  // "sha3_384"

// Python's _ALLOWED_DIGESTS, in the order of kDigestNames below.
enum class Digest : std::size_t { md5, sha256, sha384, sha3_256, sha3_384 };
constexpr std::array<std::string_view, 5> kPythonNames = {"md5", "sha256", "sha384", "sha3_256",
                                                          "sha3_384"};
// OpenSSL's names for them.
constexpr std::array<const char*, 5> kDigestNames = {"MD5", "SHA2-256", "SHA2-384", "SHA3-256",
                                                     "SHA3-384"};

bool digest_by_name(std::string_view name, Digest& out) {
    for (std::size_t i = 0; i < kPythonNames.size(); ++i)
        if (name == kPythonNames[i]) {
            out = static_cast<Digest>(i);
            return true;
        }
    return false;
}

struct MacCtxFree {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};

// This thread's HMAC context for `d`, made once: OpenSSL 3 looks the algorithms up by name in
// its providers each time a context is made (HMAC() does that every call, about 3 us), while
// re-keying a made context costs only the key's two hash blocks.
EVP_MAC_CTX* mac_context(Digest d) {
    // Fetched once and kept for the life of the process (contexts refer to it).
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
    thread_local std::array<std::unique_ptr<EVP_MAC_CTX, MacCtxFree>, kDigestNames.size()> contexts;
    auto& ctx = contexts[static_cast<std::size_t>(d)];
    if (!ctx && mac) {
        std::unique_ptr<EVP_MAC_CTX, MacCtxFree> made(EVP_MAC_CTX_new(mac));
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(
                                   OSSL_MAC_PARAM_DIGEST,
                                   const_cast<char*>(kDigestNames[static_cast<std::size_t>(d)]), 0),
                               OSSL_PARAM_construct_end()};
        if (made && EVP_MAC_CTX_set_params(made.get(), params) == 1) ctx = std::move(made);
    }
    if (!ctx)
        throw AuthenticationError("multiproc: authentication: OpenSSL has no HMAC for this digest");
    return ctx.get();
}

std::string hmac(Digest d, std::string_view key, std::string_view message) {
    EVP_MAC_CTX* ctx = mac_context(d);
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    std::size_t len = 0;
    // A non-null key pointer even for the empty key: an empty key is a real key, while a null
    // one would mean "keep the previous key".
    static const unsigned char kNoKey = 0;
    const auto* k = key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
    if (EVP_MAC_init(ctx, k, key.size(), nullptr) != 1 ||
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1 ||
        EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1)
        throw AuthenticationError("multiproc: authentication: HMAC failed");
    return std::string(reinterpret_cast<const char*>(out.data()), len);
}

// Python's _get_digest_name_and_payload: the legacy form (raw HMAC-MD5) has an empty name.
struct Parsed {
    Digest digest;
    std::string_view name;
    std::string_view payload;
};
Parsed digest_and_payload(std::string_view m) {
    if (m.size() == kLegacyMessageLength || m.size() == kMd5Length) return {Digest::md5, {}, m};
    if (!m.empty() && m.front() == '{') {
        const auto close = m.find('}', 1);
        if (close != std::string_view::npos && close <= kMaxDigestName + 1) {
            const std::string_view name = m.substr(1, close - 1);
            Digest d{};
            if (digest_by_name(name, d)) return {d, name, m.substr(close + 1)};
        }
    }
    throw AuthenticationError(
        "multiproc: authentication failed: unsupported message length, missing "
        "digest prefix, or unsupported digest (" +
        std::to_string(m.size()) + " bytes)");
}

}  // namespace

std::string make_challenge(AuthDigest digest) {
    const bool legacy = digest == AuthDigest::legacy_md5;
    std::string random(legacy ? kLegacyMessageLength : kMessageLength, '\0');
    sys::random_bytes_buffered(random.data(), random.size());
    return legacy ? random : "{sha256}" + random;
}

std::string respond_to_challenge(std::string_view key, std::string_view message) {
    if (message.size() < kLegacyMessageLength)
        throw AuthenticationError("multiproc: authentication failed: the challenge is too short (" +
                                  std::to_string(message.size()) + " bytes)");
    const Parsed p = digest_and_payload(message);
    if (p.name.empty()) return hmac(Digest::md5, key, message);
    // The MAC covers the whole message, prefix included, so it cannot be downgraded.
    return "{" + std::string(p.name) + "}" + hmac(p.digest, key, message);
}

bool response_is_valid(std::string_view key, std::string_view message, std::string_view response) {
    const Parsed p = digest_and_payload(response);
    const std::string expected = hmac(p.digest, key, message);
    return expected.size() == p.payload.size() &&
           CRYPTO_memcmp(expected.data(), p.payload.data(), p.payload.size()) == 0;
}

}  // namespace mp::detail
