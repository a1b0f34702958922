// The recipe: one YAML file (and the files it extends) as plain data.
//
//   name: worker                 # optional, for messages and the manifest
//   extends: common.yaml         # optional; a path relative to this file
//   epoch: 1700000000            # optional; SOURCE_DATE_EPOCH in the environment wins
//   vars: {domain: lan}          # strings; may use other vars; --set key=value overrides
//   base: {tarball: path, sha256: ...} | {dir: path}
//   nodes: [{name: worker-1, mac: ..., serial: ..., ip: ..., vars: {...}}]
//   steps: [{STEP_TYPE: OPTIONS}, ...]
//   outputs: [{OUTPUT_TYPE: OPTIONS}, ...]
//
// Extending: the parent is loaded first; the child's `steps` are appended to the parent's, `vars` are
// merged (the child wins), and any other key the child gives replaces the parent's. Relative paths
// always resolve from the folder of the file that wrote them.
#pragma once

#include "core/diag.hpp"
#include "core/doc.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ib {

struct NodeSpec {
    std::string name;
    std::map<std::string, std::string> fields; // name, mac, serial, ip, and the node's own vars
    Mark mark;
};

struct Recipe {
    std::string file; // as given on the command line
    std::string name;
    Doc base;
    std::vector<Doc> steps;   // each a one-key map {TYPE: OPTIONS}
    std::vector<Doc> outputs; // same shape
    std::vector<NodeSpec> nodes;
    size_t nodes_written = 0; // items under `nodes:`, valid or not
    std::map<std::string, std::string> vars; // rendered
    std::optional<int64_t> epoch;
};

using Overrides = std::vector<std::pair<std::string, std::string>>;

// Loads `file` and everything it extends. Problems go into `diag`; the result is as complete as the
// problems allow, so that validation can go on and report more of them.
Recipe load_recipe(const std::string& file, const Overrides& overrides, Diagnostics& diag);

// The folder holding the file named in `mark`, for relative paths written there.
std::string folder_of(const Mark& mark);
// `p` as written at `mark`, made relative to the cwd's view: absolute stays, relative joins folder_of.
std::string host_path(const Mark& mark, const std::string& p);

} // namespace ib
