// The Tree: an in-memory, layered index of a root filesystem (ARCHITECTURE.md).
//
// Entries are keyed by normalised absolute path and ordered by path::Less, so every walk is
// deterministic: a directory comes right before its contents, siblings by name byte by byte.
//
// Layers stack: base (what the source image holds), recipe (the steps applied once), node (one per
// node). Only the top layer is written to; lower layers are shared read-only between forks, so a node
// costs only what differs. Deleting a path hides it, and everything below it, with whiteouts.
//
// Symlinks are resolved inside the tree, component by component, with ".." stopping at the tree's
// root: no lookup can name anything outside the tree, whatever the links say. Nothing here touches the
// host filesystem.
//
// Invariants: "/" is a directory; every entry's parent is a directory; a hardlink entry names a stored
// path holding a regular file, device, fifo or socket (never a directory or another hardlink).
#pragma once

#include "core/content.hpp"
#include "core/path.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ib {

enum class FileType : uint8_t { Regular, Directory, Symlink, Hardlink, CharDevice, BlockDevice, Fifo, Socket };

std::string_view type_name(FileType type); // "file", "directory", ...

struct Timestamp {
    int64_t sec = 0;
    uint32_t nsec = 0;
    auto operator<=>(const Timestamp&) const = default;
};

struct Entry {
    FileType type = FileType::Regular;
    uint32_t perm = 0644; // permission bits with setuid, setgid and sticky: 07777
    uint32_t uid = 0;
    uint32_t gid = 0;
    Timestamp mtime;
    std::map<std::string, std::string> xattrs; // name -> raw value ("security.capability", ...)
    std::string link;                          // symlink target as written, or hardlink target path
    uint32_t rdev_major = 0;
    uint32_t rdev_minor = 0;
    ContentRef content;        // regular files; null means empty
    bool hardlinked = false;   // some Hardlink entry may name this path

    uint64_t size() const { return content ? content->size() : 0; }
    bool is_dir() const { return type == FileType::Directory; }

    static Entry directory(uint32_t perm, Timestamp mtime, uint32_t uid = 0, uint32_t gid = 0);
    static Entry file(ContentRef content, uint32_t perm, Timestamp mtime, uint32_t uid = 0, uint32_t gid = 0);
    static Entry symlink(std::string target, Timestamp mtime, uint32_t uid = 0, uint32_t gid = 0);
};

struct LayerInfo {
    std::string name;
    size_t entries = 0;
    size_t whiteouts = 0;
};

class Tree {
public:
    using Visitor = std::function<void(const std::string& path, const Entry& entry)>;

    // A tree holding only "/" (0755, root, `root_mtime`) in a layer called `layer_name`.
    explicit Tree(std::string layer_name = "base", Timestamp root_mtime = {});

    // Freezes the current top layer (shared from now on) and starts an empty one named `name`.
    void push_layer(std::string name);
    // A copy sharing every layer of this tree, with a new empty top layer named `name`.
    Tree fork(std::string name) const;
    std::vector<LayerInfo> layers() const;

    // Mtime given to entries that the tree makes itself (missing parent directories).
    void set_default_mtime(Timestamp t) { m_default_mtime = t; }
    Timestamp default_mtime() const { return m_default_mtime; }

    // --- Reading -------------------------------------------------------------------------------
    // The entry stored at exactly this normalised path, nothing resolved. nullptr when absent.
    const Entry* get(std::string_view stored_path) const;
    // Resolves `p` inside the tree; symlinks in every component but the last are followed, the last
    // too when `follow_last`. Missing components are kept as written. Throws on a link loop.
    std::string resolve(std::string_view p, bool follow_last = true) const;
    // get(resolve(p, follow_last)), and for a hardlink the entry it names.
    const Entry* find(std::string_view p, bool follow_last = true) const;
    bool exists(std::string_view p) const { return find(p, false) != nullptr; }

    // Visits every entry in path::Less order.
    void walk(const Visitor& visit) const;
    // Visits `dir` (a stored path) and everything below it.
    void walk_under(std::string_view dir, const Visitor& visit) const;
    // Names of the entries directly inside the stored directory `dir`, sorted.
    std::vector<std::string> children(std::string_view dir) const;
    size_t size() const;

    // Stored paths matching a shell pattern ('*', '?', '[...]' within components), sorted. Symlinks in
    // directories on the way are followed inside the tree; the matched entries themselves are not.
    std::vector<std::string> glob(std::string_view pattern) const;

    // Reads a regular file (following links). Throws when it is missing or not a regular file.
    std::string read_file(std::string_view p) const;

    // --- Writing (top layer only) ------------------------------------------------------------
    // Stores `entry` at `p`. The parent is resolved inside the tree and created (0755, root) when
    // missing and `make_parents`; the last component is not followed. A directory replaced by a
    // non-directory loses its contents; a directory replaced by a directory keeps them. Returns the
    // stored path. Throws when a parent is not a directory.
    std::string put(std::string_view p, Entry entry, bool make_parents = true);
    // Creates `p` and its missing parents as directories like `tmpl`; existing ones are left alone.
    std::string mkdirs(std::string_view p, const Entry& tmpl);
    // Adds a hardlink at `p` to the existing entry at `target`.
    std::string link(std::string_view p, std::string_view target);
    // Writes a regular file at `p`, following symlinks as a shell redirect would. An existing file
    // keeps its owner, mode and xattrs; a new one gets `perm`, root and the default mtime.
    std::string write_file(std::string_view p, std::string data, uint32_t perm = 0644);
    // Removes `p` (not following the last component) and everything below it. Hardlinks to a removed
    // file keep its content. Returns false when nothing was there.
    bool remove(std::string_view p);
    // A writable copy of the entry at the stored path `p`, copied up into the top layer.
    Entry* edit(std::string_view stored_path);

private:
    struct Slot {
        bool whiteout = false;
        Entry entry;
    };
    using Map = std::map<std::string, Slot, path::Less>;
    struct Layer {
        std::string name;
        Map map;
    };

    Map& top(); // the top layer's map, copied first if a fork still shares it
    const Slot* slot(std::string_view p) const;
    bool in_lower(std::string_view p) const;
    void erase_one(const std::string& p);
    void detach_hardlinks(const std::string& p);
    std::string resolve_parent(std::string_view p, bool make_parents);
    void merge_walk(std::string_view under, bool whole, const Visitor& visit) const;

    std::vector<std::shared_ptr<const Layer>> m_lower; // bottom first
    std::shared_ptr<Layer> m_top; // shared with forks until either side writes
    Timestamp m_default_mtime;
};

} // namespace ib
