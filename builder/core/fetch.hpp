// Base images and tarballs named by URL (http, https, file), downloaded once into the cache (cache.hpp).
//
// Pinned (the recipe gives a sha256): the file is `downloads/<sha256>`, made once and then reused by
// every build, whatever URL names the same content. While it downloads it is `downloads/<sha256>.part`;
// a download that fails or is interrupted leaves that .part, and the next build continues it with an
// HTTP Range request. The complete file is checked against the pin before it is renamed into place; a
// mismatch deletes it. Two builds at once wait for each other instead of downloading twice. The cached
// file is verified before each use (cache::get_or_make_verified): changed since it was checked, it is
// hashed again, and one that no longer matches its pin is removed with a warning and downloaded again.
//
// Unpinned (--insecure): nothing says whether a cached copy is still what the URL serves, so it is
// downloaded again every build, whole (no resume: the halves could come from two versions), into
// `downloads-unpinned/<sha256 of the URL>`, replaced by rename so that a reader sees an old or a new
// file, never half of one. Its sha256 is printed as a warning, ready to pin.
//
// A progress bar (percent, MiB, MiB/s) is drawn on stderr when it is a terminal and not -q.
#pragma once

#include "core/error.hpp"

#include <string>

namespace ib::fetch {

// True when `value` starts with a URL scheme ("https://", "ftp://") rather than naming a host path.
bool is_url(const std::string& value);

// Whether `url` is a valid http, https or file URL; the failure says why.
Result<void> check_url(const std::string& url);

// The host path of `url`'s content in the cache, downloaded first when needed. `sha256` is the pin
// (64 lower-case hex digits), or "" for an unpinned download. Failures throw an Error naming the URL:
// "URL: HTTP 404 Not Found", "URL: sha256 is X, but the recipe pins Y".
std::string download(const std::string& url, const std::string& sha256);

// For a pinned download that failed to read: hashes the cached file again, whatever its record says.
// False when it no longer matched its pin (it was then removed, and the next download() fetches it again).
bool recheck(const std::string& sha256);

} // namespace ib::fetch
