// What imgbuild wrote into an output folder: the file `.imgbuild-outputs` there lists, for every path
// an output of the last build put in place (and SHA256SUMS), the output type that wrote it, whether
// it is a file or a folder, and its identity. The next build replaces a path only when it is still
// that same thing, written by the same type of output (build.cpp checks it before anything is built):
// a folder or file of the user's at an output's path, or another output's, is never taken for ours.
//
// The identity tells "ours" from "the user put something else there": the inode and its birth time
// (a rename keeps both, so a netboot folder updated in place or a file renamed into place keeps what
// was recorded; a file or folder made anew gets others, even when the inode number is reused), and
// for a file also its size and mtime (a file written to since is no longer what imgbuild wrote). A
// folder's own mtime is left out: nodes add files to their netboot folders.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ib::owned {

inline constexpr const char* k_file = ".imgbuild-outputs";
inline constexpr const char* k_checksums_type = "checksums"; // SHA256SUMS

struct Entry {
    std::string type; // output type ("tar", "netboot", ...) or k_checksums_type
    bool dir = false;
    std::string id;   // "INODE.BIRTH" for a folder, "INODE.BIRTH.SIZE.MTIME" for a file (times in ns)
    std::string path; // relative to the output folder, normalised
};

// The entries of `out_dir`'s record; empty when there is none. A record that cannot be parsed counts
// as empty (nothing is then taken for imgbuild's), and `problem` says why.
std::vector<Entry> read(const std::string& out_dir, std::string* problem = nullptr);

// The record's text for `entries` (paths holding a newline are left out: they could not be read back).
std::string text(const std::vector<Entry>& entries);

// The entry for `path` that matches what is at `host` now (same kind and identity, written by
// `type`), or nullptr. A symlink never matches.
const Entry* find_match(const std::vector<Entry>& entries, const std::string& path, const std::string& type,
                        const std::string& host);

// An entry for what is at `host` now (a regular file or a real folder), or nullopt when it is absent
// or something else (a symlink is never followed).
std::optional<Entry> describe(const std::string& type, const std::string& path, const std::string& host);

} // namespace ib::owned
