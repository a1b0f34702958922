// Steps: the edits a recipe makes to the Tree, one file each, listed in one table (steps/table.cpp).
//
// A step type's parse function reads its options (already templated for one node, or for none) and
// reports every problem into env.diag without side effects; it may read host files named by the
// recipe, never write them. apply() edits the Tree only: steps never touch the host filesystem.
// Applying a step twice gives the same tree as applying it once.
#pragma once

#include "core/diag.hpp"
#include "core/doc.hpp"
#include "core/tree.hpp"

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace ib {

struct StepParseEnv {
    Diagnostics& diag;
    std::string what; // "step 'files'", for messages
    Mark mark;        // where the step starts
};

struct StepApplyEnv {
    Timestamp now; // mtime for what the step creates (SOURCE_DATE_EPOCH when set)
};

class Step {
public:
    virtual ~Step() = default;
    // One line for --dry-run: what the step will do, with its resolved values.
    virtual std::string describe() const = 0;
    virtual void apply(Tree& tree, const StepApplyEnv& env) const = 0;
};

struct StepType {
    std::string_view name;
    std::string_view summary; // one line for --help and error messages
    std::unique_ptr<Step> (*parse)(const Doc& options, StepParseEnv& env);
};

std::span<const StepType> step_types();
const StepType* find_step_type(std::string_view name);

} // namespace ib
