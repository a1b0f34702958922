// Writing partition tables: MBR (with the disk signature Raspberry Pi OS's PARTUUIDs are made of) and
// GPT (protective MBR, header and entries, and their backups at the end of the disk).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ib {

struct NewPartition {
    uint64_t start = 0; // bytes, a multiple of 512
    uint64_t size = 0;  // bytes, a multiple of 512
    uint8_t mbr_type = 0x83;
    std::string gpt_type; // GPT type GUID, e.g. "0fc63daf-8483-4772-8e79-3d69d8477de4"
    std::array<uint8_t, 16> gpt_guid{};
    std::string name; // GPT partition name
};

// The 512-byte MBR sector for up to four primary partitions.
std::string make_mbr(uint32_t disk_signature, const std::vector<NewPartition>& parts);

// Writes a GPT to the open file `fd` of `disk_size` bytes: protective MBR, primary header and entries
// at LBA 1-33, backup entries and header in the last 33 sectors. Throws Error on I/O failure.
void write_gpt(int fd, uint64_t disk_size, const std::array<uint8_t, 16>& disk_guid, const std::vector<NewPartition>& parts);

// "01020304-0506-..." in GPT's mixed-endian display form, lower case.
std::string guid_string(const std::array<uint8_t, 16>& bytes);

// Writes `data` at `offset` of `fd`, all of it. Throws Error naming `what`.
void pwrite_all(int fd, const void* data, size_t len, uint64_t offset, const std::string& what);

} // namespace ib
