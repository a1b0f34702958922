// YAML adapter: the only place that includes yaml-cpp.
#pragma once

#include "core/doc.hpp"
#include "core/error.hpp"

#include <string>

namespace ib::yaml {

// Parses YAML text into a Doc. `file` is the name used in every Mark. Syntax errors and duplicate
// map keys are reported into `diag`; the result is then a Null Doc (or partial, for duplicates).
Doc parse(const std::string& text, const std::string& file, Diagnostics& diag);

// Reads and parses a file; a missing or unreadable file is reported into `diag` at `from`.
Doc parse_file(const std::string& path, Diagnostics& diag, const Mark& from = {});

} // namespace ib::yaml
