#include "core/validate.hpp"

#include <cctype>
#include <charconv>

namespace ib::validate {

namespace {
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
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
                return std::string("contains '") + c + "' (only a-z, 0-9, '-' and '.' are allowed)";
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
            return std::string("contains '") + s[i] + "', not a hex digit";
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
        if (!is_hex(c)) return std::string("contains '") + c + "', not a hex digit";
    return std::nullopt;
}

std::optional<std::string> ipv4(std::string_view s, bool allow_prefix) {
    std::string_view addr = s;
    if (size_t slash = s.find('/'); slash != std::string_view::npos) {
        if (!allow_prefix) return "must be an address without a /prefix";
        std::string_view prefix = s.substr(slash + 1);
        int p = -1;
        auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), p);
        if (ec != std::errc() || end != prefix.data() + prefix.size() || p < 0 || p > 32)
            return "has prefix '/" + std::string(prefix) + "', not 0..32";
        addr = s.substr(0, slash);
    }
    int parts = 0;
    size_t i = 0;
    while (i <= addr.size()) {
        size_t dot = addr.find('.', i);
        if (dot == std::string_view::npos) dot = addr.size();
        std::string_view part = addr.substr(i, dot - i);
        int v = -1;
        auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || part.size() > 3 || ec != std::errc() || end != part.data() + part.size() || v > 255)
            return "is not an IPv4 address";
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
            return std::string("contains '") + c + "'";
    return std::nullopt;
}

} // namespace ib::validate
