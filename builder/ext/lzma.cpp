#include "ext/lzma.hpp"

#include <lzma.h>

#include <vector>

namespace ib::lzma {

namespace {

constexpr size_t k_input = 1 << 20;

std::string reason(lzma_ret r) {
    switch (r) {
    case LZMA_BUF_ERROR: return "the xz data ends early: the file is truncated";
    case LZMA_DATA_ERROR: return "the xz data is corrupt";
    case LZMA_FORMAT_ERROR: return "not in the xz format";
    case LZMA_OPTIONS_ERROR: return "xz: unsupported compression options";
    case LZMA_MEM_ERROR: return "xz: out of memory";
    case LZMA_MEMLIMIT_ERROR: return "xz: the data needs more memory than allowed";
    case LZMA_UNSUPPORTED_CHECK: return "xz: unsupported integrity check";
    default: return "xz: error " + std::to_string(static_cast<int>(r));
    }
}

struct Stream {
    lzma_stream s = LZMA_STREAM_INIT;
    ~Stream() { lzma_end(&s); }
};

} // namespace

Result<void> decode(decode::InputFile& in, decode::SparseWriter& out) {
    Stream st;
    lzma_mt mt{};
    mt.flags = LZMA_CONCATENATED; // like xz: streams one after the other make one file
    mt.threads = k_threads;
    mt.timeout = 0;               // block until there is output: no polling
    // Each thread holds a whole block's output; beyond this budget liblzma falls back to one thread,
    // which needs only the dictionary.
    mt.memlimit_threading = k_thread_memory;
    mt.memlimit_stop = UINT64_MAX; // like xz -d: any .xz decodes, whatever its dictionary
    if (lzma_ret r = lzma_stream_decoder_mt(&st.s, &mt); r != LZMA_OK) return fail(reason(r));

    std::vector<uint8_t> buf(k_input);
    lzma_action action = LZMA_RUN;
    while (true) {
        if (st.s.avail_in == 0 && action == LZMA_RUN) {
            size_t n = in.read(reinterpret_cast<char*>(buf.data()), buf.size());
            st.s.next_in = buf.data();
            st.s.avail_in = n;
            if (n == 0) action = LZMA_FINISH;
        }
        std::span<char> room = out.space();
        st.s.next_out = reinterpret_cast<uint8_t*>(room.data());
        st.s.avail_out = room.size();
        lzma_ret r = lzma_code(&st.s, action);
        out.advance(room.size() - st.s.avail_out);
        if (r == LZMA_STREAM_END) return {};
        if (r != LZMA_OK) return fail(reason(r));
        check_interrupted();
    }
}

} // namespace ib::lzma
