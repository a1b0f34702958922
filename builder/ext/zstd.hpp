// zstd adapter: the only place that includes libzstd's header.
#pragma once

#include "core/error.hpp"
#include "ext/decode.hpp"

namespace ib::zstd {

// Decodes the zstd frames that make up `in` (one or more, skippable frames allowed) into `out`, each
// frame's checksum verified when it has one. The failure says what went wrong ("the zstd data ends
// early: the file is truncated", "zstd: Data corruption detected") without naming the file; errors of
// `in` and `out` themselves are thrown as they come (Error).
Result<void> decode(decode::InputFile& in, decode::SparseWriter& out);

} // namespace ib::zstd
