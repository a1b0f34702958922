// What every output writer needs to turn the Tree's hardlinks into an on-disk or in-archive form.
//
// In the Tree a hardlink entry names its target's path; an output walks in path order, where a link may
// come before its target. So the first member of each group in walk order is written as the real object
// (with the target's metadata and content) and every later member as a link to it.
#pragma once

#include "core/tree.hpp"

#include <map>
#include <string>

namespace ib {

class HardlinkLeaders {
public:
    explicit HardlinkLeaders(const Tree& tree);
    // For a group member that is not first in walk order: the path of the first. nullptr otherwise.
    const std::string* link_to(const std::string& p, const Entry& stored) const;
    // The entry whose metadata and content `p` carries: the target's, for a hardlink entry.
    const Entry& object(const std::string& p, const Entry& stored) const;

private:
    const Tree& m_tree;
    std::map<std::string, std::string, path::Less> m_first; // group key (target path) -> first member
};

// The mode of an output file that holds all of `tree` (a tarball, a disk image): 0600 when anything
// in it is kept from other users inside the image (a file or folder without the "others may read"
// bit: /etc/shadow, generated SSH host keys, /root), since whoever can read the image file reads those
// too; else 0644. The umask applies on top.
uint32_t output_file_mode(const Tree& tree);

// Creates `file`, which must not exist, empty and with `mode`, so that a writer opening it by name
// afterwards (libarchive truncates, it does not re-create) writes into a file nobody else could open.
void create_output_file(const std::string& file, uint32_t mode);

} // namespace ib
