// Writing a Tree into a host folder with real owners, modes, xattrs, devices, hardlinks, holes and
// mtimes: what the `dir` output is, and what `netboot` writes its NFS roots with.
//
// Owners other than the builder's own, device nodes and non-user xattrs need root; check_root_needed()
// says so before anything is written. Regular files may come from a FileStore (one inode shared by
// every folder that holds the same file) or be cloned from an earlier copy of the same content.
#pragma once

#include "core/tree.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace ib {

class FileStore;

// Per-folder copies of the same content: the first is written, the later ones are reflinked from it
// (ioctl FICLONE) where the filesystem offers that, else written again. Shared by the folders of one
// build; holds the contents it has seen, so that no address is reused for other bytes meanwhile.
// Safe to use from several threads.
class CopySources {
public:
    // Writes the new file `host` as `e` (content and metadata): a clone of an earlier copy when possible.
    // `owner_is_mine`: see write_file().
    void write(const std::string& host, const Entry& e, bool owner_is_mine = false);
    size_t clones() const { return m_clones; }

private:
    std::mutex m_mutex;
    struct First {
        ContentRef held; // keeps the content, so that its address names nothing else meanwhile
        std::string path;
        bool ready = false; // written completely: may be cloned
    };
    std::map<const Content*, First> m_first;
    std::atomic<bool> m_clone_works = true; // false after the filesystem refused once: no point asking per file
    std::atomic<size_t> m_clones = 0;
};

struct FolderOptions {
    // Regular files for which `shared(stored path)` is true are hardlinked from this store.
    FileStore* store = nullptr;
    std::function<bool(std::string_view)> shared;
    // Every other regular file's content goes through this when given (reflinks), else is written.
    CopySources* copies = nullptr;
    // Threads that create the entries of one folder (FolderSync); the store, the copies and the
    // content sums are shared between them.
    int threads = 1;
    // A stored folder whose contents FolderSync leaves out (the folder itself is written): a mount
    // point that something else fills. Nothing below it may be hardlinked from outside it.
    std::string leave_out;
};

// Throws, before anything is written, when the builder is not root and `tree` holds entries that only
// root can write as they are; the message names one, and says to run as root or use a tar output.
// `what` names the output in it ("output 'dir' rootfs").
void check_root_needed(const Tree& tree, const std::string& what);

// Writes `tree` as the new folder `dest` (which must not exist). Throws Error; what was written
// stays for the caller (a Staging) to remove.
void write_folder(const Tree& tree, const std::string& dest, const FolderOptions& options = {});

// The pieces, for other writers. write_file(): the new regular file `host` holding `e`'s content
// (holes kept) with `e`'s owner (when root), mode, xattrs and mtime, set through the open file.
// set_metadata(): the same metadata on an existing `host`, not following a symlink. Both leave the
// owner alone when `owner_is_mine` says `host` was made by this process in a folder it made (so it has
// the builder's uid and gid) and `e` asks for just those.
void write_file(const std::string& host, const Entry& e, bool owner_is_mine = false);
void set_metadata(const std::string& host, const Entry& e, bool owner_is_mine = false);
// Creates the new name `host` as the object `e` (not a Hardlink entry) stored at `stored_path`, with
// its metadata, as write_folder() does. A directory is made empty and 0700: the caller sets its
// metadata once its contents are in (set_metadata), since adding them moves its mtime.
void create_entry(const std::string& host, const std::string& stored_path, const Entry& e, const FolderOptions& options,
                  bool owner_is_mine = false);

} // namespace ib
