// A folder of regular files, each written once and hardlinked wherever the same file appears: the
// boot files every node's TFTP folder holds, the /usr every NFS root holds (DESIGN.md, "Writers").
//
// Hardlinks share an inode, so they share owner, mode, xattrs and mtime, not only bytes: a file is
// named by the sha256 of its content *and* that metadata, and two paths become one inode only when
// nothing about them may differ. The content's hash is computed once per content object of the build
// (the base layer's files are the same objects in every node's tree), not once per node.
#pragma once

#include "core/tree.hpp"

#include <map>
#include <set>
#include <string>

namespace ib {

class FileStore {
public:
    // `dir` is created (0700: only hardlinks into it are meant to be read) on first use.
    explicit FileStore(std::string dir) : m_dir(std::move(dir)) {}

    // Makes `host` (a new name) a hardlink to the stored copy of the regular file `e`, writing that
    // copy with `e`'s content and metadata first when the store does not hold it yet.
    void link(const Entry& e, const std::string& host);
    // The stored copy's path ("DIR/<sha256>"), written when missing.
    std::string put(const Entry& e);

    const std::string& dir() const { return m_dir; }
    size_t files() const { return m_written.size(); }

private:
    std::string key(const Entry& e);
    std::string m_dir;
    bool m_made = false;
    std::set<std::string> m_written;                                   // keys stored so far
    std::map<const Content*, std::pair<ContentRef, std::string>> m_sums; // content -> (held, sha256)
};

} // namespace ib
