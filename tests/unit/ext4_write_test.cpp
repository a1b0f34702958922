#include "core/disk.hpp"
#include "ext/ext2fs.hpp"
#include "ext/ext4_write.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

std::string run(const std::string& command) {
    std::string out;
    FILE* p = popen((command + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int status = pclose(p);
    out += "\nexit=" + std::to_string(WEXITSTATUS(status));
    return out;
}

std::string empty_file(const TempDir& d, const std::string& name, uint64_t size) {
    std::string f = d.path() + "/" + name;
    int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    ::close(fd);
    return f;
}

Tree sample() {
    Tree t("base", {1700000000, 123});
    Entry bin = file("#!/bin/sh\necho hi\n", 0755);
    bin.mtime = {1600000000, 987654321};
    t.put("/usr/bin/hello", bin);
    t.link("/usr/bin/hello-again", "/usr/bin/hello");
    Entry ping = file("\x7f" "ELF", 04755);
    ping.xattrs["security.capability"] = std::string("\x01\x00\x00\x02\x00\x20\x00\x00", 8) + std::string(12, '\0');
    ping.xattrs["user.comment"] = "kept";
    t.put("/usr/bin/ping", ping);
    Entry dev;
    dev.type = FileType::CharDevice;
    dev.perm = 0666;
    dev.rdev_major = 1;
    dev.rdev_minor = 3;
    t.put("/dev/null", dev);
    Entry big_dev = dev;
    big_dev.type = FileType::BlockDevice;
    big_dev.rdev_major = 259;
    big_dev.rdev_minor = 300;
    t.put("/dev/nvme", big_dev);
    Entry fifo;
    fifo.type = FileType::Fifo;
    fifo.perm = 0600;
    t.put("/run/initctl", fifo);
    t.put("/lib", link("usr/lib"));
    t.put("/etc/long-link", link(std::string(200, 'x')));
    Entry home = dir(0700);
    home.uid = 1000;
    home.gid = 1000;
    t.put("/home/pi", home);
    Entry owned = file("pi's", 0600);
    owned.uid = 1000;
    owned.gid = 1000;
    t.put("/home/pi/notes", owned);
    auto spool = Spool::create();
    spool->begin();
    spool->add(3 << 20, "data", 4);
    t.put("/var/sparse", Entry::file(spool->finish(8 << 20), 0644, {}));
    for (int i = 0; i < 500; ++i) t.put("/usr/share/many/file-" + std::to_string(i), file(std::to_string(i)));
    t.put("/boot/firmware/config.txt", file("not in ext4"));
    return t;
}

ext4::Options options() {
    ext4::Options o;
    o.time = {1700000000, 0};
    for (int i = 0; i < 16; ++i) o.uuid[static_cast<size_t>(i)] = static_cast<uint8_t>(i + 1);
    o.hash_seed = o.uuid;
    o.exclude = {"/boot/firmware"};
    return o;
}

} // namespace

TEST_CASE("ext4 written in-process passes e2fsck and reads back entry for entry", "[ext4]") {
    TempDir d;
    Tree in = sample();
    uint64_t size = 64ull << 20;
    std::string img = empty_file(d, "root.ext4", size);
    auto r = ext4::write(in, img, 0, size, options());
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());

    std::string fsck = run("e2fsck -fn " + img);
    INFO(fsck);
    CHECK(fsck.find("exit=0") != std::string::npos);

    // Independent reader: debugfs from e2fsprogs.
    std::string stat = run("debugfs -R 'stat /usr/bin/ping' " + img);
    CHECK(stat.find("Mode:  04755") != std::string::npos);
    CHECK(stat.find("security.capability") != std::string::npos);
    std::string cat = run("debugfs -R 'cat /usr/bin/hello' " + img);
    CHECK(cat.find("echo hi") != std::string::npos);
    std::string features = run("dumpe2fs -h " + img);
    CHECK(features.find("metadata_csum") != std::string::npos);
    CHECK(features.find("64bit") == std::string::npos);
    CHECK(features.find("Filesystem UUID:          01020304-0506-0708-090a-0b0c0d0e0f10") != std::string::npos);

    // The project's own reader lists the same tree (the boot folder's contents excluded).
    auto file = ImageFile::open(img);
    Tree out("base");
    REQUIRE(ext2::read_tree(file, 0, "test", out, "/").ok());
    in.remove("/boot/firmware/config.txt");
    CHECK(detailed_listing(out, "/lost+found") == detailed_listing(in));
    auto extents = out.get("/var/sparse")->content->extents();
    REQUIRE(extents.size() == 1); // only the block that holds data is allocated
    CHECK(extents[0].offset == (3u << 20));
}

TEST_CASE("ext4 output is byte-identical for the same tree and options", "[ext4]") {
    TempDir d;
    uint64_t size = 32ull << 20;
    std::string a = empty_file(d, "a.ext4", size), b = empty_file(d, "b.ext4", size);
    REQUIRE(ext4::write(sample(), a, 0, size, options()).ok());
    REQUIRE(ext4::write(sample(), b, 0, size, options()).ok());
    CHECK(sha256_file(a).value() == sha256_file(b).value());
}

TEST_CASE("ext4: too little room is an error, not a broken filesystem", "[ext4]") {
    TempDir d;
    Tree t;
    auto spool = Spool::create();
    spool->begin();
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 12; ++i) spool->add(static_cast<uint64_t>(i) << 20, chunk.data(), chunk.size());
    t.put("/big", Entry::file(spool->finish(12 << 20), 0644, {}));
    uint64_t size = 8ull << 20;
    std::string img = empty_file(d, "small.ext4", size);
    auto r = ext4::write(t, img, 0, size, options());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("/big"));
    CHECK(ext4::needed_bytes(t, {}) > (12ull << 20));
}

TEST_CASE("ext4 with many empty block groups keeps every group checksum right", "[ext4]") {
    // Empty groups keep uninitialised bitmaps; their descriptor checksums once went stale, and the
    // kernel refused to mount the root ("Checksum for group 6 failed").
    TempDir d;
    uint64_t size = 1ull << 30;
    std::string img = empty_file(d, "big.ext4", size);
    REQUIRE(ext4::write(sample(), img, 0, size, options()).ok());
    std::string fsck = run("e2fsck -fn " + img);
    INFO(fsck);
    CHECK(fsck.find("exit=0") != std::string::npos);
}
