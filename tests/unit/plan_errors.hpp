// make_plan's error message for a recipe file in a test folder, for tests of recipe validation.
#pragma once

#include "core/build.hpp"
#include "core/error.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

namespace ib::test {

// The recipe's error message, "" when it is valid; it must be a recipe error (exit 2). Runs in `dir`,
// so paths in messages are relative to it.
inline std::string errors_of(const TempDir& dir, const std::string& name, const Overrides& overrides = {}) {
    std::string cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    std::string out;
    try {
        make_plan(name, overrides);
    } catch (const Error& e) {
        CHECK(e.exit_code() == k_exit_usage);
        out = e.what();
    }
    std::filesystem::current_path(cwd);
    return out;
}

} // namespace ib::test
