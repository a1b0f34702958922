#include "core/table_write.hpp"

#include "core/disk.hpp"
#include "core/error.hpp"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace ib {

namespace {

void put_le(std::string& b, size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// GUID text as GPT stores it: the first three fields little-endian.
std::array<uint8_t, 16> guid_bytes(const std::string& text) {
    std::array<uint8_t, 16> out{};
    std::string hex;
    for (char c : text)
        if (c != '-') hex += c;
    static const int k_order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16 && static_cast<size_t>(i * 2 + 1) < hex.size(); ++i)
        out[static_cast<size_t>(k_order[i])] = static_cast<uint8_t>(std::stoul(hex.substr(static_cast<size_t>(i * 2), 2), nullptr, 16));
    return out;
}

} // namespace

std::string guid_string(const std::array<uint8_t, 16>& b) {
    char buf[40];
    snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[3], b[2], b[1], b[0],
             b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return buf;
}

void pwrite_all(int fd, const void* data, size_t len, uint64_t offset, const std::string& what) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw Error(errno_message("write " + what, errno));
        p += n;
        len -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

std::string make_mbr(uint32_t disk_signature, const std::vector<NewPartition>& parts) {
    std::string mbr(512, '\0');
    put_le(mbr, 440, disk_signature, 4);
    for (size_t i = 0; i < parts.size() && i < 4; ++i) {
        size_t at = 446 + i * 16;
        // CHS fields hold the "beyond 1024 cylinders" marker, as every modern tool writes them.
        mbr[at + 1] = static_cast<char>(0xFE);
        mbr[at + 2] = static_cast<char>(0xFF);
        mbr[at + 3] = static_cast<char>(0xFF);
        mbr[at + 4] = static_cast<char>(parts[i].mbr_type);
        mbr[at + 5] = static_cast<char>(0xFE);
        mbr[at + 6] = static_cast<char>(0xFF);
        mbr[at + 7] = static_cast<char>(0xFF);
        put_le(mbr, at + 8, parts[i].start / 512, 4);
        put_le(mbr, at + 12, parts[i].size / 512, 4);
    }
    mbr[510] = static_cast<char>(0x55);
    mbr[511] = static_cast<char>(0xAA);
    return mbr;
}

void write_gpt(int fd, uint64_t disk_size, const std::array<uint8_t, 16>& disk_guid, const std::vector<NewPartition>& parts) {
    uint64_t last_lba = disk_size / 512 - 1;
    const uint32_t count = 128, entry_size = 128;
    std::string entries(count * entry_size, '\0');
    for (size_t i = 0; i < parts.size(); ++i) {
        size_t at = i * entry_size;
        auto type = guid_bytes(parts[i].gpt_type);
        std::memcpy(&entries[at], type.data(), 16);
        std::memcpy(&entries[at + 16], parts[i].gpt_guid.data(), 16);
        put_le(entries, at + 32, parts[i].start / 512, 8);
        put_le(entries, at + 40, (parts[i].start + parts[i].size) / 512 - 1, 8);
        for (size_t c = 0; c < parts[i].name.size() && c < 36; ++c) put_le(entries, at + 56 + c * 2, static_cast<uint8_t>(parts[i].name[c]), 2);
    }
    uint32_t entries_crc = crc32(entries.data(), entries.size());
    auto header = [&](uint64_t self, uint64_t other, uint64_t entries_lba) {
        std::string h(512, '\0');
        std::memcpy(&h[0], "EFI PART", 8);
        put_le(h, 8, 0x00010000, 4);
        put_le(h, 12, 92, 4);
        put_le(h, 24, self, 8);
        put_le(h, 32, other, 8);
        put_le(h, 40, 34, 8);             // first usable LBA
        put_le(h, 48, last_lba - 33, 8);  // last usable LBA
        std::memcpy(&h[56], disk_guid.data(), 16);
        put_le(h, 72, entries_lba, 8);
        put_le(h, 80, count, 4);
        put_le(h, 84, entry_size, 4);
        put_le(h, 88, entries_crc, 4);
        put_le(h, 16, crc32(h.data(), 92), 4);
        return h;
    };
    NewPartition protective;
    protective.start = 512;
    protective.size = std::min<uint64_t>(disk_size - 512, 0xFFFFFFFFull * 512);
    protective.mbr_type = 0xEE;
    std::string mbr = make_mbr(0, {protective});
    pwrite_all(fd, mbr.data(), mbr.size(), 0, "protective MBR");
    std::string primary = header(1, last_lba, 2), backup = header(last_lba, 1, last_lba - 32);
    pwrite_all(fd, primary.data(), primary.size(), 512, "GPT header");
    pwrite_all(fd, entries.data(), entries.size(), 1024, "GPT entries");
    pwrite_all(fd, entries.data(), entries.size(), (last_lba - 32) * 512, "backup GPT entries");
    pwrite_all(fd, backup.data(), backup.size(), last_lba * 512, "backup GPT header");
}

} // namespace ib
