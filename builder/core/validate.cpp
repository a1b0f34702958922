#include "core/validate.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace ib::validate {

namespace {
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
// ASCII only, whatever the locale says about bytes above 0x7F.
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char c) {
    return is_alpha(c) || (c >= '0' && c <= '9');
}
} // namespace

std::optional<std::string> hostname(std::string_view s) {
    if (s.empty()) return "is empty";
    if (s.size() > 253) return "is longer than 253 characters";
    size_t start = 0;
    while (start <= s.size()) {
        size_t dot = s.find('.', start);
        if (dot == std::string_view::npos) dot = s.size();
        std::string_view label = s.substr(start, dot - start);
        if (label.empty()) return "has an empty label";
        if (label.size() > 63) return "has a label longer than 63 characters";
        for (char c : label)
            if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
                return (c > ' ' && c < 0x7F
                            ? std::string("contains '") + c + "'"
                            : std::string("contains a blank, control or non-ASCII character")) +
                       " (only a-z, 0-9, '-' and '.' are allowed)";
        if (label.front() == '-' || label.back() == '-') return "has a label that starts or ends with '-'";
        start = dot + 1;
    }
    return std::nullopt;
}

std::optional<std::string> mac(std::string_view s) {
    if (s.size() != 17) return "is not six hex pairs like b8:27:eb:12:34:56";
    char sep = s[2];
    if (sep != ':' && sep != '-') return "is not six hex pairs like b8:27:eb:12:34:56";
    for (size_t i = 0; i < 17; ++i) {
        if (i % 3 == 2) {
            if (s[i] != sep) return "mixes separators or is not six hex pairs";
        } else if (!is_hex(s[i])) {
            return s[i] > ' ' && s[i] < 0x7F ? std::string("contains '") + s[i] + "', not a hex digit"
                                             : std::string("is not six hex pairs like b8:27:eb:12:34:56");
        }
    }
    return std::nullopt;
}

std::string normalise_mac(std::string_view s) {
    std::string out(s);
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = i % 3 == 2 ? ':' : static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
    return out;
}

std::optional<std::string> serial(std::string_view s) {
    if (s.size() != 8) return "is not 8 hex digits";
    for (char c : s)
        if (!is_hex(c))
            return c > ' ' && c < 0x7F ? std::string("contains '") + c + "', not a hex digit"
                                       : std::string("is not 8 hex digits");
    return std::nullopt;
}

std::optional<std::string> ipv4(std::string_view s, bool allow_prefix) {
    std::string_view addr = s;
    if (size_t slash = s.find('/'); slash != std::string_view::npos) {
        if (!allow_prefix) return "must be an address without a /prefix";
        std::string_view prefix = s.substr(slash + 1);
        bool digits = !prefix.empty() && prefix.size() <= 2 &&
                      prefix.find_first_not_of("0123456789") == std::string_view::npos &&
                      !(prefix.size() == 2 && prefix[0] == '0');
        int p = -1;
        if (digits) std::from_chars(prefix.data(), prefix.data() + prefix.size(), p);
        if (!digits || p < 0 || p > 32) return "has prefix '/" + shown(prefix) + "', not 0..32";
        addr = s.substr(0, slash);
    }
    int parts = 0;
    size_t i = 0;
    while (i <= addr.size()) {
        size_t dot = addr.find('.', i);
        if (dot == std::string_view::npos) dot = addr.size();
        std::string_view part = addr.substr(i, dot - i);
        // Digits only: from_chars would take "-5", and "010" is octal to inet_aton (dnsmasq, the kernel).
        bool digits = !part.empty() && part.size() <= 3 &&
                      part.find_first_not_of("0123456789") == std::string_view::npos;
        int v = -1;
        if (digits) std::from_chars(part.data(), part.data() + part.size(), v);
        if (!digits || v > 255) return "is not an IPv4 address";
        if (part.size() > 1 && part[0] == '0')
            return "has an octet with a leading zero, which some read as octal";
        ++parts;
        i = dot + 1;
    }
    if (parts != 4) return "is not an IPv4 address";
    return std::nullopt;
}

std::optional<std::string> account_name(std::string_view s) {
    if (s.empty() || s.size() > 32) return "must be 1 to 32 characters";
    if (!(std::islower(static_cast<unsigned char>(s[0])) || s[0] == '_')) return "must start with a-z or '_'";
    for (char c : s)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
              c == '-'))
            return c > ' ' && c < 0x7F ? std::string("contains '") + c + "'"
                                       : std::string("contains a blank, control or non-ASCII character");
    return std::nullopt;
}

bool utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            continue;
        }
        size_t n = b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : 0;
        if (n == 0 || i + n >= s.size()) return false;
        uint32_t cp = b & (0x3F >> n);
        for (size_t k = 1; k <= n; ++k) {
            auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = cp << 6 | (c & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

std::optional<std::string> one_line(std::string_view s, bool allow_tab) {
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\t' && allow_tab) continue;
        if (c == 0) return "contains a NUL byte";
        if (c == '\n' || c == '\r') return "contains a line break";
        if (c < 0x20 || c == 0x7F) {
            char buf[48];
            std::snprintf(buf, sizeof buf, "contains the control character 0x%02X", c);
            return std::string(buf);
        }
    }
    if (!utf8(s)) return "is not valid UTF-8";
    return std::nullopt;
}

std::optional<std::string> one_line_without(std::string_view s, std::string_view forbidden) {
    if (auto why = one_line(s)) return why;
    if (size_t at = s.find_first_of(forbidden); at != std::string_view::npos) {
        char c = s[at];
        if (c == ' ') return "contains a blank";
        if (c == '\t') return "contains a tab";
        return std::string("contains '") + c + "'";
    }
    return std::nullopt;
}

std::optional<std::string> var_name(std::string_view s) {
    if (s.empty()) return "is empty";
    if (!(is_alpha(s[0]) || s[0] == '_')) return "must start with a letter or '_'";
    for (char c : s)
        if (!(is_alnum(c) || c == '_' || c == '-')) return "may hold only letters, digits, '_' and '-'";
    return std::nullopt;
}

std::optional<std::string> owner(std::string_view s) {
    if (s.empty()) return "is empty";
    if (s.find_first_not_of("0123456789") == std::string_view::npos) {
        uint64_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || v > k_max_id)
            return "is out of range: ids are 0.." + std::to_string(k_max_id) +
                   " (4294967295 is chown's 'no change', not an id)";
        return std::nullopt;
    }
    if (s.size() > 32) return "is longer than 32 characters";
    if (!(is_alpha(s[0]) || s[0] == '_'))
        return "is neither a number nor a name (names start with a letter or '_')";
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = is_alnum(c) || c == '_' || c == '-' || c == '.' || (c == '$' && i + 1 == s.size());
        if (!ok && c > ' ' && c < 0x7F)
            return std::string("contains '") + c + "', which no user or group name holds";
        if (!ok) return "contains a blank, control or non-ASCII character, which no user or group name holds";
    }
    return std::nullopt;
}

std::string shown(std::string_view s) {
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\n')
            out += "\\n";
        else if (c == '\r')
            out += "\\r";
        else if (c == '\t')
            out += "\\t";
        else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else
            out += ch;
    }
    if (!utf8(out)) {
        std::string ascii;
        for (char ch : out) {
            auto c = static_cast<unsigned char>(ch);
            if (c < 0x80) {
                ascii += ch;
            } else {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\x%02x", c);
                ascii += buf;
            }
        }
        return ascii;
    }
    return out;
}

} // namespace ib::validate
