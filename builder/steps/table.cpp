#include "steps/step.hpp"

#include <array>

namespace ib {

std::unique_ptr<Step> parse_delete(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_files(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_hostname(const Doc&, StepParseEnv&);

namespace {
// Adding a step: one file in steps/ and one line here, in name order.
constexpr std::array k_steps = {
    StepType{"delete", "remove paths (globs allowed) from the image", parse_delete},
    StepType{"files", "copy a host file or folder (an overlay) into the image, or write inline content", parse_files},
    StepType{"hostname", "set /etc/hostname and the 127.0.1.1 line of /etc/hosts", parse_hostname},
};
} // namespace

std::span<const StepType> step_types() { return k_steps; }

const StepType* find_step_type(std::string_view name) {
    for (const auto& t : k_steps)
        if (t.name == name) return &t;
    return nullptr;
}

} // namespace ib
