// MBR and GPT partition tables (core/disk.cpp) and the filesystem probe, on any bytes as an image.
#include "core/disk.hpp"
#include "core/error.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto image = ib::ImageFile::open(ib::fuzz::as_file(data, size));
        ib::PartitionTable t = ib::read_partition_table(*image);
        (void)t.disk_id();
        for (const auto& p : t.partitions) (void)ib::probe_filesystem(*image, p.offset, p.size);
        (void)ib::probe_filesystem(*image, 0, image->size());
    } catch (const ib::Error&) {
    }
    return 0;
}
