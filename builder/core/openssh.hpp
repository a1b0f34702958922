// OpenSSH's text and wire formats, without any cryptography: base64, the length-prefixed strings of
// RFC 4251 section 5, and the lines of an authorized_keys file (sshd(8), "AUTHORIZED_KEYS FILE FORMAT").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ib::openssh {

// Standard base64 (RFC 4648 section 4) with '=' padding.
std::string base64_encode(std::string_view data);
// Strict decoding: only the standard alphabet, length a multiple of 4, padding only at the end and
// unused bits zero. nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view text);

// Appends to a wire-format buffer: uint32 big-endian, and string = uint32 length + bytes.
void put_u32(std::string& out, uint32_t v);
void put_string(std::string& out, std::string_view s);

// Reads wire-format fields from the front of `in`, consuming them; nullopt when `in` is too short.
std::optional<uint32_t> get_u32(std::string_view& in);
std::optional<std::string_view> get_string(std::string_view& in);

// One public key line: "[options] type base64 [comment]".
struct PublicKey {
    std::string options; // "" when none
    std::string type;    // "ssh-ed25519", ...
    std::string blob;    // the decoded key data
    std::string comment;
};

// Key types sshd accepts in authorized_keys that imgbuild lets a recipe name.
bool known_key_type(std::string_view type);

// Parses and checks one line: a known type, base64 key data whose first field names the same type.
// On failure the error says what is wrong ("type 'ssh-ed25519' does not match the key data's
// 'ssh-rsa'"), never quoting the key data.
struct KeyParse {
    std::optional<PublicKey> key;
    std::string error;
};
KeyParse parse_public_key(std::string_view line);

} // namespace ib::openssh
