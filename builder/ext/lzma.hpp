// liblzma adapter (.xz): the only place that includes lzma.h.
#pragma once

#include "core/error.hpp"
#include "ext/decode.hpp"

namespace ib::lzma {

// Decodes the .xz streams that make up `in` (concatenated streams and stream padding allowed) into
// `out`, each block's check verified. A multi-block stream (xz -T) is decoded on up to k_threads
// threads, as long as they fit in k_thread_memory; other streams on one. The failure says what went
// wrong ("the xz data ends early: the file is truncated", "the xz data is corrupt") without naming the
// file; errors of `in` and `out` themselves are thrown as they come (Error).
Result<void> decode(decode::InputFile& in, decode::SparseWriter& out);

inline constexpr unsigned k_threads = 2;                // the build machines have 2 cores
inline constexpr uint64_t k_thread_memory = 160u << 20; // beyond this liblzma decodes on one thread

} // namespace ib::lzma
