// `imgbuild RECIPE --manifest FILE`: what a build was made from and what it wrote, as JSON, so that any
// build (not only ci/release.sh) can say which recipe files, base, vars, nodes and steps made its outputs.
#pragma once

#include "core/build.hpp"

#include <string>

namespace ib {

// The manifest of `plan` as one JSON object (format "imgbuild-manifest/1"): imgbuild's version, the
// recipe files with their sha256, the base (as written, the file or URL it names, pin and sha256 of a
// local file), the resolved vars, the nodes, every step and output with its options as written
// (templates unrendered: the vars and nodes give their values), the epoch. When `out_dir` is given
// (after a build), also "files": every file the build listed in out_dir/SHA256SUMS with its size
// and sha256.
std::string manifest_json(const Plan& plan, const std::string& version, const std::string& out_dir);

// `text` as a JSON string literal; bytes that are not UTF-8 become U+FFFD.
std::string json_string(std::string_view text);

} // namespace ib
