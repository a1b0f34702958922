// Paths inside a Tree: always absolute, '/'-separated, no '.', '..', empty or trailing components.
//
// normalise() is lexical: ".." at the root stays at the root, as in a chroot, so no path inside a tree
// can name anything above it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ib::path {

// "etc//x/./y/../z" -> "/etc/x/z"; "../../.." -> "/"; "" -> "/".
std::string normalise(std::string_view p);

// "/etc/hosts" -> "/etc"; "/" -> "/".
std::string parent(std::string_view p);

// "/etc/hosts" -> "hosts"; "/" -> "".
std::string_view name(std::string_view p);

// join("/etc", "x/y") -> "/etc/x/y" (normalised); an absolute `rel` replaces `base`.
std::string join(std::string_view base, std::string_view rel);

// Components of a normalised path: "/a/b" -> {"a", "b"}.
std::vector<std::string_view> split(std::string_view p);

// True when `p` is `ancestor` or below it.
bool is_within(std::string_view p, std::string_view ancestor);

// Ordering in which every directory comes right before everything inside it and siblings sort by
// name byte by byte: "/a" < "/a/b" < "/a-b". Tree layers and every output use it.
struct Less {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
};

// Shell-style match of one name against a pattern with '*', '?' and '[...]' (no '/').
bool glob_match(std::string_view pattern, std::string_view name);
bool has_glob(std::string_view p);

} // namespace ib::path
