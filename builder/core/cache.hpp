// The download and decode cache: $IMGBUILD_CACHE, else $XDG_CACHE_HOME/imgbuild, else
// ~/.cache/imgbuild. Entries are named by a sha256 (of their content or of a verified pin; an unpinned
// local image's decoded copy by the file's identity, sources/image.cpp) and appear by rename, so a
// reader sees a whole file or none; a lock file serialises two builds that would make the same entry.
#pragma once

#include <functional>
#include <string>

namespace ib::cache {

std::string dir();

// The path of `kind/key` (e.g. "decoded/<sha256>.img"), made by `make(temp_path)` when missing.
// `make` writes temp_path; the entry is renamed into place only when it returns without throwing.
// Concurrent callers for the same key wait for the first one instead of making it twice.
std::string get_or_make(const std::string& kind, const std::string& key,
                        const std::function<void(const std::string& temp)>& make);

// get_or_make for an entry that is checked before every use: its sha256 is recorded beside it
// (`<key>.sum`), with the size, mtime, ctime and inode it had then. While those are unchanged the entry
// is taken as it is (a stat); when any differs (the file was written to, replaced, copied), the whole
// entry is hashed again, and one that no longer has its sha256 is removed with a warning and made
// again. `make` returns the sha256 of what it wrote when it knows it, else "" (the cache hashes it).
// `expected`, when not "", is the sha256 the entry must have whatever its record says (a download's
// pin): an entry without a record is then checked against it rather than made again.
std::string get_or_make_verified(const std::string& kind, const std::string& key,
                                 const std::function<std::string(const std::string& temp)>& make,
                                 const std::string& expected = "");

// Hashes the entry `kind/key` now, whatever its record says: true when it is what its record (or
// `expected`) says, or absent; false when it was not, and it was removed (with a warning). For an entry that
// fails to read although its record matched (a disk that lost bytes without changing the file's times).
bool recheck(const std::string& kind, const std::string& key, const std::string& expected = "");

} // namespace ib::cache
