// Tarballs (any compression) and .deb packages through libarchive (ext/archive.cpp, ext/package.cpp).
// The first byte picks the reader, the rest is the file.
#include "core/error.hpp"
#include "core/tree.hpp"
#include "ext/archive.hpp"
#include "ext/package.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    std::string file = ib::fuzz::as_file(data + 1, size - 1);
    try {
        switch (data[0] % 3) {
        case 0: {
            ib::Tree tree;
            if (ib::archive::read_tarball(file, tree))
                tree.walk([](const std::string&, const ib::Entry& e) {
                    if (e.type == ib::FileType::Regular && e.content)
                        e.content->for_each_chunk([](uint64_t, const char*, size_t) {});
                });
            break;
        }
        case 1: (void)ib::package::read_deb(file); break;
        case 2: (void)ib::package::read_release_tarball(file); break;
        }
    } catch (const ib::Error&) {
    }
    return 0;
}
