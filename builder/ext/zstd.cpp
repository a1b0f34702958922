#include "ext/zstd.hpp"

#include <zstd.h>

#include <memory>
#include <vector>

namespace ib::zstd {

namespace {

struct DStreamDeleter {
    void operator()(ZSTD_DStream* s) const { ZSTD_freeDStream(s); }
};

// Large reads, few syscalls; small enough to stay in the CPU's cache.
constexpr size_t k_input = 1 << 20;

} // namespace

Result<void> decode(decode::InputFile& in, decode::SparseWriter& out) {
    std::unique_ptr<ZSTD_DStream, DStreamDeleter> ds(ZSTD_createDStream());
    if (!ds) return fail("zstd: cannot allocate a decoder");
    std::vector<char> buf(k_input);
    ZSTD_inBuffer input{buf.data(), 0, 0};
    bool eof = false;
    size_t hint = 1; // 0 once a frame is complete and flushed
    while (true) {
        if (input.pos == input.size && !eof) {
            size_t n = in.read(buf.data(), buf.size());
            eof = n == 0;
            input = ZSTD_inBuffer{buf.data(), n, 0};
        }
        // Decoding straight into the writer's buffer: the only copy is the decoder's own, out of its window.
        std::span<char> room = out.space();
        ZSTD_outBuffer output{room.data(), room.size(), 0};
        size_t consumed = input.pos;
        size_t r = ZSTD_decompressStream(ds.get(), &output, &input);
        if (ZSTD_isError(r)) return fail(std::string("zstd: ") + ZSTD_getErrorName(r));
        // A call that did nothing (no input left after a finished frame) asks for the next frame's
        // header; only calls that moved tell where the stream stands.
        if (input.pos != consumed || output.pos > 0) hint = r;
        out.advance(output.pos);
        // With no input left, an output buffer not filled to the end means nothing more is held back.
        if (eof && output.pos < output.size) break;
        check_interrupted();
    }
    if (hint != 0) return fail("the zstd data ends early: the file is truncated");
    return {};
}

} // namespace ib::zstd
