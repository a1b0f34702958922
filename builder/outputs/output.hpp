// Outputs: what a build leaves in the output folder, one file each, listed in one table
// (outputs/table.cpp). Each writes the final Tree once, to temporary paths from the build's Staging;
// the pipeline renames every output into place only when all of them succeeded.
#pragma once

#include "core/diag.hpp"
#include "core/doc.hpp"
#include "core/tree.hpp"

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ib {

struct NodeSpec;

struct OutputParseEnv {
    Diagnostics& diag;
    std::string what;
    Mark mark;
    const NodeSpec* node = nullptr; // the node of a per-node output's instance, for checks against it
};

struct OutputWriteEnv {
    int threads = 1;
    Timestamp now;                 // the build's time (SOURCE_DATE_EPOCH when set)
    std::string identity;          // "recipe-name" or "recipe-name/node-name": what derived IDs are made from
    const NodeSpec* node = nullptr; // the node being written, for per-node outputs
    bool prune = false; // --prune: folders kept for nodes no longer in the recipe are removed
};

class Staging;
class Output;

// A path (relative to the output folder) that an output replaces, or writes into when it is a folder
// updated in place: before the build, it must be absent or what this type of output wrote there.
struct OutputTarget {
    std::string path;
    bool dir = false;
};

// Every node's instance of one per-node output, with its node, in recipe order.
using NodeOutputs = std::vector<std::pair<const Output*, const NodeSpec*>>;

class Output {
public:
    virtual ~Output() = default;
    virtual std::string describe() const = 0;
    // Where the output goes, relative to the output folder (validated: no "..", not absolute).
    const std::string& path() const { return m_path; }
    // True when the output is a folder rather than a file.
    virtual bool is_dir() const { return false; }
    // The paths no other output may equal, lie inside or hold: path(), and companion files.
    virtual std::vector<std::string> areas() const { return {m_path}; }
    // What the instance for `node` (nullptr for a shared output) replaces or updates in place.
    virtual std::vector<OutputTarget> targets(const NodeSpec*) const { return {{m_path, is_dir()}}; }
    // What one write() wrote, relative to the output folder, for the log's "wrote ..." line: path(),
    // and for a per-node output that names its folders itself, the node's folders.
    virtual std::string written(const OutputWriteEnv&) const { return path() + (is_dir() ? "/" : ""); }
    // Writes `tree` into the files it asks `staging` for (staging.temp_for(path()), and any companion
    // files such as a .bmap); they are renamed into place after every output succeeded. Throws Error.
    virtual void write(const Tree& tree, Staging& staging, const OutputWriteEnv& env) const = 0;
    // Checks that can only be made once the tree is known, before anything is written (permissions).
    virtual void check(const Tree&) const {}
    // Called once after every node's instance of a per-node output was written, on the first
    // instance, with all of them: for what spans the nodes (a server configuration listing them).
    // It runs after every output was written and before the Staging renames them into place: an
    // output that updates existing folders in place (netboot) applies its changes here.
    virtual void finish(Staging&, const NodeOutputs&, const OutputWriteEnv&) const {}

protected:
    std::string m_path;
};

struct OutputType {
    std::string_view name;
    std::string_view summary;
    std::unique_ptr<Output> (*parse)(const Doc& options, OutputParseEnv& env);
    bool always_per_node = false; // one instance per node even when the options use no {{node.*}}
};

std::span<const OutputType> output_types();
const OutputType* find_output_type(std::string_view name);

// Reads and checks the `path` option every output has.
std::optional<std::string> output_path(MapReader& m, const Doc& options, OutputParseEnv& env);

} // namespace ib
