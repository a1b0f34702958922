#include "core/accounts.hpp"

#include "core/error.hpp"

#include <charconv>
#include <sstream>
#include <vector>

namespace ib::accounts {

namespace {

std::optional<uint32_t> number(std::string_view s) {
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return v;
    return std::nullopt;
}

std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, ':')) out.push_back(f);
    if (!line.empty() && line.back() == ':') out.emplace_back();
    return out;
}

// The fields of the line in `file` whose first field is `name`.
std::optional<std::vector<std::string>> lookup(const Tree& tree, const char* file, std::string_view name) {
    const Entry* e = tree.find(file);
    if (!e || e->type != FileType::Regular) return std::nullopt;
    std::stringstream ss(read_all(e->content));
    std::string line;
    while (std::getline(ss, line)) {
        auto f = fields(line);
        if (f.size() >= 3 && f[0] == name) return f;
    }
    return std::nullopt;
}

} // namespace

uint32_t uid(const Tree& tree, std::string_view user) {
    if (auto n = number(user)) return *n;
    if (auto f = lookup(tree, "/etc/passwd", user); f && number((*f)[2])) return *number((*f)[2]);
    throw Error("user '" + std::string(user) + "' is not in the image's /etc/passwd");
}

uint32_t gid(const Tree& tree, std::string_view group) {
    if (auto n = number(group)) return *n;
    if (auto f = lookup(tree, "/etc/group", group); f && number((*f)[2])) return *number((*f)[2]);
    throw Error("group '" + std::string(group) + "' is not in the image's /etc/group");
}

std::optional<User> find_user(const Tree& tree, std::string_view name) {
    auto f = lookup(tree, "/etc/passwd", name);
    if (!f || f->size() < 7 || !number((*f)[2]) || !number((*f)[3])) return std::nullopt;
    return User{(*f)[0], *number((*f)[2]), *number((*f)[3]), (*f)[5], (*f)[6]};
}

} // namespace ib::accounts
