#include "core/path.hpp"

#include <fnmatch.h>

namespace ib::path {

std::string normalise(std::string_view p) {
    std::vector<std::string_view> parts;
    size_t i = 0;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        std::string_view part = p.substr(i, j - i);
        if (part.empty() || part == ".") {
        } else if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else {
            parts.push_back(part);
        }
        i = j + 1;
    }
    if (parts.empty()) return "/";
    std::string out;
    for (auto part : parts) {
        out += '/';
        out += part;
    }
    return out;
}

std::string parent(std::string_view p) {
    size_t slash = p.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return "/";
    return std::string(p.substr(0, slash));
}

std::string_view name(std::string_view p) {
    size_t slash = p.rfind('/');
    return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

std::string join(std::string_view base, std::string_view rel) {
    if (!rel.empty() && rel[0] == '/') return normalise(rel);
    std::string s(base);
    s += '/';
    s += rel;
    return normalise(s);
}

std::vector<std::string_view> split(std::string_view p) {
    std::vector<std::string_view> parts;
    size_t i = 0;
    while (i < p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        if (j > i) parts.push_back(p.substr(i, j - i));
        i = j + 1;
    }
    return parts;
}

bool is_within(std::string_view p, std::string_view ancestor) {
    if (ancestor == "/") return true;
    if (p.size() < ancestor.size() || p.substr(0, ancestor.size()) != ancestor) return false;
    return p.size() == ancestor.size() || p[ancestor.size()] == '/';
}

bool Less::operator()(std::string_view a, std::string_view b) const {
    size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
        unsigned char ca = a[i] == '/' ? 0 : static_cast<unsigned char>(a[i]);
        unsigned char cb = b[i] == '/' ? 0 : static_cast<unsigned char>(b[i]);
        if (ca != cb) return ca < cb;
    }
    return a.size() < b.size();
}

bool glob_match(std::string_view pattern, std::string_view name_) {
    std::string p(pattern), n(name_);
    return fnmatch(p.c_str(), n.c_str(), FNM_PERIOD) == 0;
}

bool has_glob(std::string_view p) { return p.find_first_of("*?[") != std::string_view::npos; }

} // namespace ib::path
