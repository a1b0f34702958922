#include "ext/sshkey.hpp"

#include "core/openssh.hpp"

#include <memory>
#include <openssl/evp.h>

namespace ib {

namespace {

constexpr std::string_view k_type = "ssh-ed25519";

std::string armour(std::string_view data) {
    std::string b64 = openssh::base64_encode(data);
    std::string out = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
    // ssh-keygen wraps at 70 columns; readers accept any width, but matching it keeps files familiar.
    for (size_t i = 0; i < b64.size(); i += 70)
        out += b64.substr(i, 70) + "\n";
    return out + "-----END OPENSSH PRIVATE KEY-----\n";
}

} // namespace

Result<SshKeyPair> ed25519_key_pair(std::string_view seed, std::string_view comment) {
    if (seed.size() != 32)
        return fail("an Ed25519 seed must be 32 bytes, not " + std::to_string(seed.size()));
    if (comment.find_first_of("\r\n") != std::string_view::npos)
        return fail("a key comment must be one line");
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                     reinterpret_cast<const unsigned char*>(seed.data()), seed.size()),
        EVP_PKEY_free);
    if (!key) return fail("libcrypto cannot make an Ed25519 key");
    std::string pub(32, '\0');
    size_t pub_len = pub.size();
    if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pub.data()), &pub_len) != 1 ||
        pub_len != 32)
        return fail("libcrypto cannot derive the Ed25519 public key");

    std::string pub_blob;
    openssh::put_string(pub_blob, k_type);
    openssh::put_string(pub_blob, pub);

    // The private section opens with a check number written twice; OpenSSH picks it at random to
    // detect a wrong passphrase. Nothing is encrypted here, so any value does: the public key's first
    // bytes keep the file a pure function of the seed without revealing anything about it.
    std::string_view check(pub.data(), 4);
    std::string priv;
    priv += check;
    priv += check;
    openssh::put_string(priv, k_type);
    openssh::put_string(priv, pub);
    openssh::put_string(priv, std::string(seed) + pub); // OpenSSH stores seed || public key
    openssh::put_string(priv, comment);
    for (char pad = 1; priv.size() % 8 != 0; ++pad)
        priv += pad; // block size of cipher "none"

    std::string file = "openssh-key-v1";
    file += '\0';
    openssh::put_string(file, "none"); // cipher
    openssh::put_string(file, "none"); // kdf
    openssh::put_string(file, "");     // kdf options
    openssh::put_u32(file, 1);         // number of keys
    openssh::put_string(file, pub_blob);
    openssh::put_string(file, priv);

    std::string line = std::string(k_type) + " " + openssh::base64_encode(pub_blob);
    if (!comment.empty()) line += " " + std::string(comment);
    return SshKeyPair{armour(file), line + "\n"};
}

} // namespace ib
