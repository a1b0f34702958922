// Writing a Tree into a host folder that lives on between builds and that others write into meanwhile:
// netboot's per-node NFS roots, which their nodes run on (logs, home folders, installed packages).
//
// A manifest lists what imgbuild wrote into the folder: per stored path, the entry's type and a
// fingerprint of everything that makes it but its mtime (type, the content's sha256, mode, owner,
// xattrs, link target, device numbers, and whether it is a link into the store). The next build
// compares the new Tree with it, path by path:
//   - same fingerprint: left alone, not even looked at on the host (same inode, same mtime; whatever
//     the node did to it stays). A build that only moved mtimes (no epoch: the clock) changes nothing;
//   - new or different: written under a temporary name beside it (".NAME.imgbuild-tmp"; a new folder
//     with everything below it), then renamed over it; a folder whose metadata changed keeps its
//     contents and gets the new metadata;
//   - listed but not in the new Tree: removed (a folder only when nothing is left in it; an entry the
//     host now has as another type is not the one imgbuild wrote and stays);
//   - on the host but in neither: someone else's (a log the node wrote, a user's files). Never touched.
// A path the new Tree has is the recipe's whoever wrote it before: what is there is replaced. Only a
// folder holding something imgbuild did not write is never replaced by a non-folder (an Error).
//
// Two phases, so that a build that fails or is interrupted changes nothing: write() makes only
// temporaries, apply() renames them into place and removes what went, discard() removes the
// temporaries. apply() does not stop on Ctrl-C: it is quick, and each rename is atomic, so even an
// apply cut short by a crash leaves every file whole, old or new (and a manifest that makes the next
// build redo the rest: pending_manifest()).
//
// Nothing is written or removed through a symlink on the host: a folder of the Tree that the host has
// as a symlink or a non-folder is an Error when something below it changed, and removals below it are
// skipped.
#pragma once

#include "core/tree.hpp"
#include "outputs/dir_writer.hpp"

#include <map>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace ib {

class ContentSums;

struct ManifestItem {
    char type = 'f'; // d f l c b p s, or h: a hardlink to an earlier path of the Tree
    std::string fingerprint; // 32 hex digits; "-" never matches (written, but maybe not in place yet)
    bool operator==(const ManifestItem&) const = default;
};
// Stored path ("/", "/etc/hostname") -> item, in Tree walk order.
using ManifestEntries = std::vector<std::pair<std::string, ManifestItem>>;

// One manifest file: what one owner (a node) has in each of its folders, by the folder's path
// relative to the output folder ("nfs/worker-1").
struct Manifest {
    std::vector<std::pair<std::string, ManifestEntries>> folders;
    const ManifestEntries* find(const std::string& folder) const;
};
// The file's text; `comment` goes on a '#' line under the header.
std::string manifest_text(const Manifest& m, const std::string& comment);
// Reads manifest_text()'s format. Throws Error naming `file` when the text is not one, or names a
// folder that is absolute or uses "..".
Manifest parse_manifest(std::string_view text, const std::string& file);

// What FolderSync compares to tell whether an entry changed: a hash of everything that makes it but
// its mtime (content, mode, owner, xattrs, link target, device numbers), as 32 hex digits.
std::string entry_fingerprint(const Entry& e, ContentSums& sums);

class FolderSync {
public:
    // Writes into `dest`. `fresh`: `dest` does not exist yet (a Staging temporary); write() creates it
    // with everything and apply() has nothing to do. Otherwise `dest` is the existing folder, and
    // `old` what the last build wrote there (empty when unknown: then nothing there is imgbuild's).
    FolderSync(std::string dest, const ManifestEntries& old, FolderOptions options, ContentSums& sums, bool fresh);

    // Writes what differs from `old` under temporary names (everything, when fresh). Throws Error;
    // the temporaries made so far stay for discard().
    void write(const Tree& tree);
    // Puts it all in place: removals, renames, folder metadata. Throws Error (what is done stays done).
    void apply();
    // Instead of write(): plans the removal of everything `old` lists (deepest first; a folder only
    // when nothing is left in it), for a folder the build no longer writes. apply() removes it.
    void remove_all();
    // Removes the temporaries write() made. Never throws.
    void discard() noexcept;

    // What the folder holds of the Tree's once apply() ran: the manifest to keep for the next build.
    const ManifestEntries& manifest() const { return m_new; }
    // A manifest that is right while apply() runs and after it stopped anywhere: every old and new
    // path, those being replaced marked "-" (to be written again by the next build, or removed).
    ManifestEntries pending_manifest() const;
    // Whether apply() has anything to do.
    bool changes() const { return !m_renames.empty() || !m_removals.empty() || !m_dir_meta.empty(); }

    struct Counts {
        size_t unchanged = 0, written = 0, removed = 0, kept = 0; // kept: old folders left holding others' files
    };
    const Counts& counts() const { return m_counts; }

private:
    struct Rename {
        std::string temp, target;
        bool clear_dir = false;    // the target is a folder of imgbuild's entries only: removed first
        bool unlink_first = false; // the target is a non-folder where a folder goes
    };
    void hash_contents(const Tree& tree);
    bool left_out(std::string_view p) const {
        const std::string& lo = m_options.leave_out;
        return !lo.empty() && p.size() > lo.size() && p[lo.size()] == '/' && p.starts_with(lo);
    }
    std::string host_of(std::string_view stored) const { return stored == "/" ? m_dest : m_dest + std::string(stored); }
    std::string temp_beside(const std::string& target);
    void verify_folders_above(const std::string& stored);
    bool folders_above_are_real(const std::string& stored);
    void check_owned_below(const std::string& stored, const std::string& host) const;
    void remove_one(const std::string& stored, char type);

    std::string m_dest;
    std::unordered_map<std::string, ManifestItem> m_old;
    ManifestEntries m_old_order;
    FolderOptions m_options;
    ContentSums& m_sums;
    bool m_fresh;

    ManifestEntries m_new;
    std::unordered_set<std::string> m_real_dirs; // stored paths known to be folders on the host
    std::vector<std::string> m_temps;            // for discard()
    std::map<std::string, struct timespec> m_folder_mtimes; // host folders temporaries went into: their mtime before
    std::vector<Rename> m_renames;               // in walk order
    std::vector<std::pair<std::string, Entry>> m_dir_meta;   // existing folders whose metadata changed
    std::vector<std::pair<std::string, char>> m_removals;    // stored path, type; deepest first
    std::map<std::string, Timestamp> m_touched;  // host folders whose contents change: their mtime after
    Counts m_counts;
};

} // namespace ib
