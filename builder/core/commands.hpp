// The commands that look into an image without building: inspect, ls, cat.
#pragma once

#include "core/tree.hpp"

#include <ostream>
#include <string>

namespace ib {

// "IMAGE:PATH" split at the first ":/" ("disk.img:/etc/fstab" -> {"disk.img", "/etc/fstab"}); a
// spec without one is the whole image: {"disk.img", "/"}.
std::pair<std::string, std::string> split_image_spec(const std::string& spec);

// One line per entry: "type mode uid gid size mtime path[ -> target]" (ls -l like, numeric owners),
// for `path` itself when it is not a folder, else for what it holds (everything below with `recursive`).
void list_tree(const Tree& tree, const std::string& path, bool recursive, std::ostream& out);

int cmd_inspect(const std::string& image, bool json, std::ostream& out);
int cmd_ls(const std::string& spec, bool recursive, std::ostream& out);
int cmd_cat(const std::string& spec, std::ostream& out);

} // namespace ib
