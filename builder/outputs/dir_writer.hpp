// Writing a Tree into a host folder with real owners, modes, xattrs, devices, hardlinks, holes and
// mtimes: what the `dir` output is, and what `netboot` writes its NFS roots with.
//
// Owners other than the builder's own, device nodes and non-user xattrs need root; check_root_needed()
// says so before anything is written. Regular files may come from a FileStore (one inode shared by
// every folder that holds the same file) or be cloned from an earlier copy of the same content.
#pragma once

#include "core/tree.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace ib {

class FileStore;

// Per-folder copies of the same content: the first is written, the later ones are reflinked from it
// (ioctl FICLONE) where the filesystem offers that, else written again. Shared by the folders of one
// build; holds the contents it has seen, so that no address is reused for other bytes meanwhile.
class CopySources {
public:
    // Writes `e`'s content into the new file `host`: a clone of an earlier copy when possible.
    void write(const std::string& host, const Entry& e);
    size_t clones() const { return m_clones; }

private:
    std::map<const Content*, std::pair<ContentRef, std::string>> m_first; // content -> (held, first copy)
    bool m_clone_works = true; // false after the filesystem refused once: no point asking per file
    size_t m_clones = 0;
};

struct FolderOptions {
    // Regular files for which `shared(stored path)` is true are hardlinked from this store.
    FileStore* store = nullptr;
    std::function<bool(std::string_view)> shared;
    // Every other regular file's content goes through this when given (reflinks), else is written.
    CopySources* copies = nullptr;
};

// Throws, before anything is written, when the builder is not root and `tree` holds entries that only
// root can write as they are; the message names one, and says to run as root or use a tar output.
// `what` names the output in it ("output 'dir' rootfs").
void check_root_needed(const Tree& tree, const std::string& what);

// Writes `tree` as the new folder `dest` (which must not exist). Throws Error; what was written
// stays for the caller (a Staging) to remove.
void write_folder(const Tree& tree, const std::string& dest, const FolderOptions& options = {});

// The pieces, for other writers: a new regular file `host` holding `e`'s content (holes kept), and
// then `e`'s owner (when root), mode, xattrs and mtime on it.
void write_file_content(const std::string& host, const Entry& e);
void set_metadata(const std::string& host, const Entry& e);

} // namespace ib
