// Host files a recipe names (recipes, key files, user-data, base tarballs and images, packages).
//
// A name can point at anything: /dev/zero, a FIFO, a folder, a 100 GB log. Everything read from the
// host goes through these checks first, so that such a name is a clear error instead of a read until
// memory runs out or an open that never returns.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace ib::host_file {

// How much text is read fully into memory, per kind of file.
inline constexpr uint64_t k_recipe_max = 16u << 20; // a recipe or a file it extends
inline constexpr uint64_t k_text_max = 64u << 20;   // text a step reads whole: key files, user-data

// nullopt when `path` (links followed) is a regular file, or a block device where `allow_device`;
// otherwise why not, e.g. "'/dev/zero' is a character device, not a regular file". Never blocks.
std::optional<std::string> refuse(const std::string& path, bool allow_device = false);

// The whole of the regular file `path`, at most `max` bytes; `kind` names it in messages ("recipe").
// Opening never blocks (a FIFO is refused, not waited on).
Result<std::string> read(const std::string& path, uint64_t max, const std::string& kind);

// "16 MiB", "1.5 GiB": sizes in messages.
std::string human_size(uint64_t bytes);

} // namespace ib::host_file
