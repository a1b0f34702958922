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

} // namespace ib::cache
