// The ext4 reader (ext/ext2fs.cpp over libext2fs) on any bytes as a filesystem image; every file read.
#include "core/disk.hpp"
#include "core/error.hpp"
#include "core/tree.hpp"
#include "ext/ext2fs.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        std::shared_ptr<const ib::ImageFile> image = ib::ImageFile::open(ib::fuzz::as_file(data, size));
        if (!ib::ext2::info(*image, 0)) return 0;
        ib::Tree tree;
        if (!ib::ext2::read_tree(image, 0, "fuzz", tree, "/")) return 0;
        tree.walk([](const std::string&, const ib::Entry& e) {
            if (e.type == ib::FileType::Regular && e.content) e.content->for_each_chunk([](uint64_t, const char*, size_t) {});
        });
    } catch (const ib::Error&) {
    }
    return 0;
}
