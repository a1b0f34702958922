// The FAT reader (core/fat.cpp): boot sector, FAT chains, folders, long names; then every file read.
#include "core/disk.hpp"
#include "core/error.hpp"
#include "core/fat.hpp"
#include "core/tree.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        std::shared_ptr<const ib::ImageFile> image = ib::ImageFile::open(ib::fuzz::as_file(data, size));
        (void)ib::fat_info(*image, 0, image->size());
        ib::Tree tree;
        ib::read_fat(image, 0, image->size(), tree, "/boot/firmware");
        tree.walk([](const std::string&, const ib::Entry& e) {
            if (e.type == ib::FileType::Regular && e.content) e.content->for_each_chunk([](uint64_t, const char*, size_t) {});
        });
    } catch (const ib::Error&) {
    }
    return 0;
}
