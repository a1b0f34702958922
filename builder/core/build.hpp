// The pipeline: recipe -> plan -> base tree -> steps -> outputs (ARCHITECTURE.md, "The pipeline in one screen").
#pragma once

#include "core/recipe.hpp"
#include "core/tree.hpp"
#include "outputs/output.hpp"
#include "sources/source.hpp"
#include "steps/step.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ib {

// A step as the plan runs it: once for all nodes, or once per node when its options use {{node.*}}.
struct PlannedStep {
    const StepType* type = nullptr;
    std::string what; // "step 'files'"
    Mark mark;
    bool per_node = false;
    std::unique_ptr<Step> shared;             // when !per_node
    std::vector<std::unique_ptr<Step>> nodes; // when per_node: one per recipe node, in order
    const Step& for_node(size_t node) const { return per_node ? *nodes[node] : *shared; }
};

struct PlannedOutput {
    const OutputType* type = nullptr;
    std::string what;
    Mark mark;
    bool per_node = false;
    std::unique_ptr<Output> shared;
    std::vector<std::unique_ptr<Output>> nodes;
};

struct Plan {
    Recipe recipe;
    std::unique_ptr<Source> base;
    std::vector<PlannedStep> steps;
    std::vector<PlannedOutput> outputs;
    // Steps [0, shared_prefix) use no node field: they are applied once, into the recipe layer.
    size_t shared_prefix = 0;
    Timestamp now;            // mtime of what the build creates
    std::string epoch_source; // "SOURCE_DATE_EPOCH", "recipe epoch" or "clock"
    std::vector<std::string> warnings;
};

// Where a build writes, for the checks against what is there already (build and validate alike).
struct OutputChecks {
    std::string out_dir = "out";
    bool force = false; // --force: replace what is at an output's path even when imgbuild did not write it
};

// Loads the recipe and checks everything that can be checked before reading the base: every problem
// is reported at once in one Error (exit code 2). Nothing is written. `source_options` go to parse_base.
// With `checks`, also what the outputs would replace in checks->out_dir: a path that exists and is not
// what the same output wrote there in an earlier build is an error (unless force), and so is an output
// folder inside (or holding) a `dir:` base.
Plan make_plan(const std::string& recipe_file, const Overrides& overrides, const SourceOptions& source_options = {},
               const OutputChecks* checks = nullptr);

// The plan as text for --dry-run and `validate`: steps x nodes x outputs.
std::string describe(const Plan& plan, const std::string& out_dir);

struct BuildOptions {
    std::string out_dir = "out";
    int threads = 1;
    bool prune = false; // remove the folders kept for nodes no longer in the recipe (netboot)
};

// Runs the plan. Outputs appear in out_dir all together at the end, or not at all (netboot's existing
// folders are updated in place at the end instead: outputs/folder_sync.hpp).
void execute(const Plan& plan, const BuildOptions& options);

} // namespace ib
