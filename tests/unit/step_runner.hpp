// Parsing and applying one step from YAML text, for step tests: `run_step("hostname: x", tree)`.
#pragma once

#include "core/error.hpp"
#include "ext/yaml.hpp"
#include "steps/step.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

namespace ib::test {

inline constexpr Timestamp k_step_now{1700000000, 0};

// Parses the first (only) entry of `yaml` as {STEP_TYPE: OPTIONS}; a bare "TYPE" gives null options,
// as a bare list item does in a recipe.
inline std::unique_ptr<Step> parse_step(const std::string& yaml, Diagnostics& diag) {
    Doc doc = yaml::parse(yaml, "t.yaml", diag);
    if (doc.is_scalar()) {
        const StepType* type = find_step_type(doc.str());
        REQUIRE(type);
        StepParseEnv env{diag, "step '" + doc.str() + "'", doc.mark()};
        return type->parse(Doc::null(doc.mark()), env);
    }
    REQUIRE(doc.is_map());
    const auto& e = doc.entries().front();
    const StepType* type = find_step_type(e.key);
    REQUIRE(type);
    StepParseEnv env{diag, "step '" + e.key + "'", e.key_mark};
    return type->parse(e.value, env);
}

// Parses `yaml` (which must be valid) and applies it to `tree` with k_step_now.
inline void run_step(const std::string& yaml, Tree& tree) {
    Diagnostics diag;
    auto step = parse_step(yaml, diag);
    diag.checkpoint();
    REQUIRE(step);
    step->apply(tree, StepApplyEnv{k_step_now});
}

// Every parse error of `yaml`, one per line as the user sees them; "" when it parses.
inline std::string error_of(const std::string& yaml) {
    Diagnostics diag;
    parse_step(yaml, diag);
    try {
        diag.checkpoint();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// describe() of a valid step.
inline std::string describe_step(const std::string& yaml) {
    Diagnostics diag;
    auto step = parse_step(yaml, diag);
    diag.checkpoint();
    REQUIRE(step);
    return step->describe();
}

} // namespace ib::test
