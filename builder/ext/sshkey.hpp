// Ed25519 SSH key pairs: the adapter over OpenSSL's libcrypto for public-key math.
//
// Output is in OpenSSH's own formats (PROTOCOL.key in OpenSSH's sources): the private key file is
// "openssh-key-v1", unencrypted (cipher "none", kdf "none"), PEM-armoured with 70-column base64; the
// public key is one "ssh-ed25519 BASE64 COMMENT" line. The same seed always gives the same bytes.
#pragma once

#include "core/error.hpp"

#include <string>
#include <string_view>

namespace ib {

struct SshKeyPair {
    std::string private_file; // "-----BEGIN OPENSSH PRIVATE KEY-----\n...-----END OPENSSH PRIVATE KEY-----\n"
    std::string public_line;  // "ssh-ed25519 AAAA... COMMENT\n"
};

// `seed` is the 32-byte Ed25519 private key of RFC 8032 section 5.1.5. `comment` must be one line.
Result<SshKeyPair> ed25519_key_pair(std::string_view seed, std::string_view comment);

} // namespace ib
