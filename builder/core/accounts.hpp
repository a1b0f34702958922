// Users and groups as the image's own /etc/passwd and /etc/group define them (never the host's).
#pragma once

#include "core/tree.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ib::accounts {

// A name or a number: numbers are taken as they are, names are looked up in the tree.
// Throws Error naming the file when the name is not there.
uint32_t uid(const Tree& tree, std::string_view user);
uint32_t gid(const Tree& tree, std::string_view group);

// Home directory and primary group of a user, from /etc/passwd.
struct User {
    std::string name;
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::string home;
    std::string shell;
};
std::optional<User> find_user(const Tree& tree, std::string_view name);

} // namespace ib::accounts
