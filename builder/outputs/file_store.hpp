// A folder of regular files, each written once and hardlinked wherever the same file appears: the
// boot files every node's TFTP folder holds, the /usr every NFS root holds (ARCHITECTURE.md).
//
// Hardlinks share an inode, so they share owner, mode, xattrs and mtime, not only bytes: a file is
// named by the sha256 of its content *and* that metadata, and two paths become one inode only when
// nothing about them may differ. The content's hash is computed once per content object of the build
// (the base layer's files are the same objects in every node's tree), not once per node.
//
// A store an earlier build left is used as it is: a stored file whose size, mode, owner and mtime
// still match its name is linked again, never rewritten (so its inode and mtime stay); one that was
// changed through a link (written in place on a node) is replaced by a fresh copy. Every file goes
// in under a temporary name and is renamed to its own, so a store never holds a half-written file
// under a name a later build would trust.
#pragma once

#include "core/tree.hpp"

#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace ib {

// The sha256 (hex) of each content object's bytes, computed once per object and kept for the build.
// Covers the size and where the data runs start, so that a sparse file and its dense twin (same
// bytes, different blocks) differ.
// Also keeps, per content object and metadata it appears with, what is derived from the two (a
// manifest fingerprint, a store name): every node's tree holds the same base files, and each is
// looked at once per build, not once per node.
// Safe to use from several threads.
class ContentSums {
public:
    const std::string& of(const Entry& e);
    // `compute()` for the regular file `e`, remembered under `kind` for its content and metadata
    // (mode, owner, mtime, xattrs): a later entry with all of those equal gets the same value.
    const std::string& derived(const Entry& e, char kind, const std::function<std::string()>& compute);

private:
    struct Derived {
        char kind;
        uint32_t perm, uid, gid;
        Timestamp mtime;
        std::map<std::string, std::string> xattrs;
        std::string value;
    };
    struct Facts {
        ContentRef held; // keeps the content, so that its address names nothing else meanwhile
        std::string sum;  // "" until hashed
        std::list<Derived> derived; // a list: references to values stay valid
    };
    Facts& facts(const Entry& e); // with m_mutex held
    std::mutex m_mutex;
    std::unordered_map<const Content*, Facts> m_facts;
};

// Safe to use from several threads: a file two of them need is written once, and the other waits.
class FileStore {
public:
    // `dir` is created (0700: only hardlinks into it are meant to be read) on first use when missing;
    // a store made so is written directly, one that existed by temporary name and rename.
    // `sums` is shared with whoever else hashes the build's contents; the store keeps its own if null.
    explicit FileStore(std::string dir, ContentSums* sums = nullptr);
    ~FileStore();
    FileStore(const FileStore&) = delete;
    FileStore& operator=(const FileStore&) = delete;

    // Makes `host` (a new name) a hardlink to the stored copy of the regular file `e`, writing that
    // copy with `e`'s content and metadata first when the store does not hold it yet.
    void link(const Entry& e, const std::string& host);
    // The same, for the new name `name` in the folder open as `dirfd` (`host` names it in messages):
    // no path is looked up twice when many names go into one folder.
    void link_at(const Entry& e, int dirfd, const char* name, const std::string& host);
    // The stored copy's path ("DIR/ab/ab<62 more hex digits>"), written when missing.
    std::string put(const Entry& e);

    // Removes the files this object added to the store (for a build that failed); earlier builds'
    // files stay. Never throws.
    void discard_added() noexcept;
    // Removes the stored files nothing links to any more (link count 1), and returns how many went:
    // after an update replaced or removed the last names that used them.
    size_t collect_garbage();

    const std::string& dir() const { return m_dir; }
    size_t files() const { return m_known.size(); }
    size_t added() const { return m_added.size(); }

private:
    std::string key(const Entry& e);    // remembered per content and metadata
    std::string key_of(const Entry& e); // worked out
    std::string put_key(const Entry& e); // put(), returning the stored file's name
    void store(const std::string& k, const std::string& stored, const Entry& e);
    std::string m_dir;
    std::mutex m_mutex;
    bool m_made = false;
    bool m_in_place = false; // the folder existed: an earlier build's store
    int m_fd = -1;           // the folder, open (O_PATH) once it exists
    std::unordered_map<std::string, std::shared_future<void>> m_known; // keys stored or checked so far: ready when written
    std::set<std::string> m_subdirs; // the store's folders made or found so far ("ab")
    std::vector<std::string> m_added;  // paths this object wrote
    ContentSums m_own_sums;
    ContentSums* m_sums;
};

} // namespace ib
