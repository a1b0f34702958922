// Inputs ci/fuzz.sh found (tests/fuzz), each rebuilt here small enough to read, with what it did.
#include "core/disk.hpp"
#include "core/fat.hpp"
#include "core/fat_write.hpp"
#include "ext/ext2fs.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

uint16_t le16(const std::string& s, size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(s[at]) | static_cast<uint8_t>(s[at + 1]) << 8);
}

} // namespace

// fuzz_fat, slow unit (19 s for 128 KiB, exponential): a folder holding two entries for itself. The
// reader followed both, each level doubling, until the depth limit of 64.
TEST_CASE("FAT: a folder reached through two entries is an error, not 2^64 reads", "[fat][fuzz]") {
    TempDir tmp;
    Tree tree;
    tree.put("/boot/A", Entry::directory(0755, {}));
    tree.write_file("/boot/A/F.TXT", "x\n");
    std::string img = tmp.path() + "/fat12.img";
    int fd = ::open(img.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    FatOptions options;
    write_fat(fd, 0, 2 << 20, tree, "/boot", options);

    // Find folder A's entry in the (FAT12, fixed) root folder and its first cluster.
    std::string boot(512, '\0');
    REQUIRE(::pread(fd, boot.data(), boot.size(), 0) == 512);
    uint64_t bps = le16(boot, 11), spc = static_cast<uint8_t>(boot[13]), reserved = le16(boot, 14);
    uint64_t fats = static_cast<uint8_t>(boot[16]), root_entries = le16(boot, 17), fat_size = le16(boot, 22);
    uint64_t root_off = (reserved + fats * fat_size) * bps;
    std::string root(root_entries * 32, '\0');
    REQUIRE(::pread(fd, root.data(), root.size(), static_cast<off_t>(root_off)) == static_cast<ssize_t>(root.size()));
    size_t entry = root.find("A          \x10");
    REQUIRE(entry != std::string::npos);
    std::string a_entry = root.substr(entry, 32);
    uint64_t cluster = le16(a_entry, 26);
    uint64_t a_off = root_off + root_entries * 32 + (cluster - 2) * spc * bps;

    // Two more entries in A, "X" and "Y", both for A itself, in its first free slots.
    std::string folder(spc * bps, '\0');
    REQUIRE(::pread(fd, folder.data(), folder.size(), static_cast<off_t>(a_off)) == static_cast<ssize_t>(folder.size()));
    size_t slot = 0;
    while (slot < folder.size() && folder[slot] != '\0') slot += 32;
    REQUIRE(slot + 64 <= folder.size());
    for (char name : {'X', 'Y'}) {
        std::string e = a_entry;
        e[0] = name;
        folder.replace(slot, 32, e);
        slot += 32;
    }
    REQUIRE(::pwrite(fd, folder.data(), folder.size(), static_cast<off_t>(a_off)) == static_cast<ssize_t>(folder.size()));
    ::close(fd);

    auto start = std::chrono::steady_clock::now();
    Tree out;
    CHECK_THROWS_WITH(read_fat(ImageFile::open(img), 0, 2 << 20, out, "/mnt"),
                      Catch::Contains("folder '/mnt/A/X' starts at cluster") &&
                          Catch::Contains("which another folder already uses"));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5);
}

// fuzz_ext4, timeout (over 10 s for 48 KiB): the same in ext4, a folder with entries for itself.
// Made here with mke2fs -d and debugfs's `ln`, which links without checking (e2fsprogs, in ci/deps.sh).
TEST_CASE("ext4: a folder reached through two entries is an error, not 2^256 reads", "[ext4][fuzz]") {
    TempDir tmp;
    std::string root = tmp.write("root/A/f", "x\n");
    std::string img = tmp.path() + "/e4.img";
    std::string cmd = "mke2fs -q -t ext4 -d " + tmp.path() + "/root " + img + " 4M > /dev/null 2>&1 && debugfs -w -R 'ln /A /A/X' " +
                      img + " > /dev/null 2>&1 && debugfs -w -R 'ln /A /A/Y' " + img + " > /dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto start = std::chrono::steady_clock::now();
    Tree out;
    auto r = ext2::read_tree(ImageFile::open(img), 0, "root", out, "/");
    REQUIRE(!r);
    CHECK_THAT(r.error(), Catch::Contains("folder '/A/X' is inode") && Catch::Contains("which '/A' already is"));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5);
}

// fuzz_text_files, UBSan: a /etc/locale.gen line of only '#' made the locale step remove npos
// characters from a string_view (undefined; caught under the sanitizers, which ci/fuzz.sh runs).
TEST_CASE("locale: lines of only '#' in locale.gen", "[step][locale][fuzz]") {
    Tree t;
    t.write_file("/etc/locale.gen", "#\n##\n# en_GB.UTF-8 UTF-8\n");
    run_step("locale: en_GB.UTF-8", t);
    CHECK(t.read_file("/etc/locale.gen") == "#\n##\nen_GB.UTF-8 UTF-8\n");
}

// fuzz_ext4, timeouts (over 60 s for 44 KiB): a file claiming a size of terabytes. Its data runs
// were found by asking block by block up to the size; now only the extent tree is walked.
TEST_CASE("ext4: the data runs of a 1 TiB sparse file are found at once", "[ext4][fuzz]") {
    TempDir tmp;
    std::string huge = tmp.path() + "/root/huge";
    tmp.write("root/huge", "");
    REQUIRE(::truncate(huge.c_str(), 1ll << 40) == 0);
    int fd = ::open(huge.c_str(), O_WRONLY);
    REQUIRE(::pwrite(fd, "x", 1, 1ll << 39) == 1);
    ::close(fd);
    std::string img = tmp.path() + "/e4.img";
    std::string cmd = "mke2fs -q -t ext4 -d " + tmp.path() + "/root " + img + " 8M > /dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto start = std::chrono::steady_clock::now();
    Tree out;
    REQUIRE(ext2::read_tree(ImageFile::open(img), 0, "root", out, "/"));
    const Entry* e = out.get("/huge");
    REQUIRE(e);
    REQUIRE(e->content);
    auto extents = e->content->extents();
    REQUIRE(extents.size() == 1);
    CHECK(extents[0].offset == (1ull << 39));
    CHECK(extents[0].length >= 1); // the one block written: 1 KiB in so small a filesystem
    CHECK(extents[0].length <= 4096);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5);
}
