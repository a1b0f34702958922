#include "core/openssh.hpp"

#include "core/validate.hpp"

#include <array>
#include <vector>

namespace ib::openssh {

namespace {

constexpr std::string_view k_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
    size_t at = k_alphabet.find(c);
    return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// The next whitespace-separated token of `s` from `pos`; double quotes may hold spaces (and \"), as in
// sshd's options field. Sets `unterminated` when a quote is left open.
std::optional<std::string_view> next_token(std::string_view s, size_t& pos, bool& unterminated) {
    while (pos < s.size() && is_space(s[pos]))
        ++pos;
    if (pos >= s.size()) return std::nullopt;
    size_t start = pos;
    bool quoted = false;
    for (; pos < s.size(); ++pos) {
        char c = s[pos];
        if (quoted && c == '\\' && pos + 1 < s.size() && s[pos + 1] == '"') {
            ++pos;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (!quoted && is_space(c)) {
            break;
        }
    }
    unterminated = quoted;
    return s.substr(start, pos - start);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

bool looks_like_options(std::string_view token) {
    return token.find_first_of("=,\"") != std::string_view::npos;
}

} // namespace

std::string base64_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    for (size_t i = 0; i < data.size(); i += 3) {
        uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16;
        if (i + 1 < data.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
        if (i + 2 < data.size()) n |= static_cast<unsigned char>(data[i + 2]);
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += i + 1 < data.size() ? k_alphabet[(n >> 6) & 63] : '=';
        out += i + 2 < data.size() ? k_alphabet[n & 63] : '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        std::array<int, 4> v{};
        size_t pad = 0;
        for (size_t j = 0; j < 4; ++j) {
            char c = text[i + j];
            if (c == '=' && last && j >= 2) {
                ++pad;
                v[j] = 0;
                continue;
            }
            if (pad > 0) return std::nullopt; // data after padding
            v[j] = base64_value(c);
            if (v[j] < 0) return std::nullopt;
        }
        uint32_t n = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        // Bits that padding leaves unused must be zero, or the text is not the canonical encoding.
        if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) return std::nullopt;
        out += static_cast<char>((n >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(n & 0xff);
    }
    return out;
}

void put_u32(std::string& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out += static_cast<char>((v >> shift) & 0xff);
}

void put_string(std::string& out, std::string_view s) {
    put_u32(out, static_cast<uint32_t>(s.size()));
    out += s;
}

std::optional<uint32_t> get_u32(std::string_view& in) {
    if (in.size() < 4) return std::nullopt;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v = v << 8 | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
    in.remove_prefix(4);
    return v;
}

std::optional<std::string_view> get_string(std::string_view& in) {
    std::string_view rest = in;
    auto len = get_u32(rest);
    if (!len || rest.size() < *len) return std::nullopt;
    in = rest.substr(*len);
    return rest.substr(0, *len);
}

bool known_key_type(std::string_view type) {
    for (std::string_view t :
         {"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
          "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"})
        if (t == type) return true;
    return false;
}

KeyParse parse_public_key(std::string_view line) {
    line = trim(line);
    if (line.empty()) return {std::nullopt, "is empty"};
    if (line.starts_with("-----BEGIN"))
        return {std::nullopt, "is a private key or PEM block; give the line of the .pub file"};
    // authorized_keys is one key a line: a line break would smuggle in a second, unchecked line.
    for (char ch : line) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\n' || c == '\r') return {std::nullopt, "has a line break: give each key as its own item"};
        if (c < 0x20 && c != '\t') return {std::nullopt, "contains a control character or NUL byte"};
        if (c == 0x7F) return {std::nullopt, "contains a control character"};
    }
    if (!validate::utf8(line)) return {std::nullopt, "is not valid UTF-8"};

    size_t pos = 0;
    bool unterminated = false;
    std::vector<std::string_view> tokens;
    std::vector<size_t> ends;
    // At most options, type and key data; what follows is the comment.
    while (tokens.size() < 3) {
        auto t = next_token(line, pos, unterminated);
        if (!t) break;
        if (unterminated) return {std::nullopt, "has an unterminated '\"' in its options"};
        tokens.push_back(*t);
        ends.push_back(pos);
    }
    size_t type_at = 0;
    if (!known_key_type(tokens[0])) {
        if (tokens.size() > 1 && known_key_type(tokens[1])) {
            type_at = 1;
        } else if (looks_like_options(tokens[0])) {
            if (tokens.size() < 2) return {std::nullopt, "has options but no key type"};
            return {std::nullopt, "unknown key type '" + std::string(tokens[1]) + "'"};
        } else {
            return {std::nullopt, "unknown key type '" + std::string(tokens[0]) + "'"};
        }
    }
    PublicKey key;
    if (type_at == 1) key.options = tokens[0];
    key.type = tokens[type_at];
    if (tokens.size() <= type_at + 1) return {std::nullopt, "has no key data after '" + key.type + "'"};
    auto blob = base64_decode(tokens[type_at + 1]);
    if (!blob) return {std::nullopt, "the key data after '" + key.type + "' is not valid base64"};
    key.blob = std::move(*blob);
    std::string_view wire = key.blob;
    auto inner = get_string(wire);
    if (!inner) return {std::nullopt, "the key data is too short to name its type"};
    bool printable = !inner->empty() && inner->size() <= 64;
    for (char c : *inner)
        printable = printable && c > ' ' && c < 127;
    if (!printable) return {std::nullopt, "the key data does not start with a key type"};
    if (*inner != key.type)
        return {std::nullopt,
                "type '" + key.type + "' does not match the key data's '" + std::string(*inner) + "'"};
    key.comment = trim(line.substr(ends[type_at + 1]));
    return {std::move(key), {}};
}

} // namespace ib::openssh
