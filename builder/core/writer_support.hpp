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

} // namespace ib
