#include "core/acl.hpp"
#include "core/disk.hpp"
#include "ext/ext2fs.hpp"
#include "ext/ext4_write.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
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
    // ACLs as the Tree keeps them (the kernel's layout); the writer hands them to libext2fs, which
    // stores ext4's own, and the reader must give back exactly these bytes.
    home.xattrs[acl::k_access] = acl::encode({{acl::User, 7, 1001}, {acl::Group, 5, 4}, {acl::Mask, 7}}, 0700);
    home.xattrs[acl::k_default] = acl::encode({{acl::UserObj, 7}, {acl::GroupObj, 5}, {acl::Group, 5, 4}, {acl::Mask, 5}, {acl::Other, 0}}, std::nullopt);
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
    std::string acls = run("debugfs -R 'ea_list /home/pi' " + img);
    CHECK(acls.find("system.posix_acl_access (36)") != std::string::npos); // ext4's layout: 4 + 4*4 + 2*8
    CHECK(acls.find("system.posix_acl_default (28)") != std::string::npos); // 4 + 4*4 + 8
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

namespace {

// A file of `size` bytes whose data runs are `runs`, each byte a function of its offset: large and
// fragmented files without holding them in memory.
class Pattern final : public Content {
public:
    Pattern(uint64_t size, std::vector<Extent> runs) : m_size(size), m_runs(std::move(runs)) {}
    uint64_t size() const override { return m_size; }
    std::vector<Extent> extents() const override { return m_runs; }
    void read(uint64_t offset, char* buf, size_t len) const override {
        for (size_t i = 0; i < len; ++i) buf[i] = byte(offset + i);
    }
    std::string describe() const override { return "pattern"; }
    static char byte(uint64_t o) { return static_cast<char>(((o * 2654435761u) >> 13) | 1); }

private:
    uint64_t m_size;
    std::vector<Extent> m_runs;
};

// What the file reads as: the pattern inside the runs, zeros between them.
std::string expected(const Pattern& p) {
    std::string out(p.size(), '\0');
    for (const auto& r : p.extents())
        for (uint64_t o = r.offset; o < r.offset + r.length; ++o) out[o] = Pattern::byte(o);
    return out;
}

} // namespace

TEST_CASE("ext4: fragmented and very large files get an extent tree that reads back", "[ext4]") {
    // 2,000 runs 5 blocks apart need a two-level extent tree (340 extents per block, 4 in the inode);
    // some runs start mid-block, and every tenth shares its block with the next one. A dense file of
    // 32,769 blocks needs two extents (one maps at most 32,768 blocks).
    std::vector<Extent> runs;
    for (uint64_t i = 0; i < 2000; ++i) {
        uint64_t at = i * 5 * 4096 + (i % 7) * 100, len = 1000 + (i * 37) % 7000;
        if (i % 10 == 0) {
            runs.push_back({at, 100});
            runs.push_back({at + 150, len - 150});
        } else {
            runs.push_back({at, len});
        }
    }
    auto frag = std::make_shared<Pattern>(2000 * 5 * 4096 + 77, runs);
    auto big = std::make_shared<Pattern>(32769ull * 4096 - 5, std::vector<Extent>{{0, 32769ull * 4096 - 5}});
    Tree t("base", {1700000000, 0});
    t.put("/frag", Entry::file(frag, 0644, {}));
    t.put("/big", Entry::file(big, 0644, {}));
    t.put("/small", file("after the big ones"));

    TempDir d;
    uint64_t size = 256ull << 20;
    std::string img = empty_file(d, "frag.ext4", size);
    auto r = ext4::write(t, img, 0, size, options());
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());
    std::string fsck = run("e2fsck -fn " + img);
    INFO(fsck);
    CHECK(fsck.find("exit=0") != std::string::npos);
    std::string depth = run("debugfs -R 'ex /frag' " + img);
    CHECK(depth.find(" 2/ 2 ") != std::string::npos); // a leaf at level 2 of 2
    CHECK(run("debugfs -R 'ex /big' " + img).find(" 32768 ") != std::string::npos);

    // debugfs, then the project's own reader, read the same bytes that were written.
    for (const auto& [name, content] : {std::pair{"frag", frag}, std::pair{"big", big}}) {
        std::string out = d.path() + "/" + name + ".out";
        run("debugfs -R 'dump /" + std::string(name) + " " + out + "' " + img);
        CHECK(sha256_file(out).value() == sha256_hex(expected(*content)));
    }
    auto file = ImageFile::open(img);
    Tree back("base");
    REQUIRE(ext2::read_tree(file, 0, "test", back, "/").ok());
    CHECK(read_all(back.get("/frag")->content) == expected(*frag));
    CHECK(read_all(back.get("/small")->content) == "after the big ones");
    auto extents = back.get("/frag")->content->extents();
    CHECK(extents.size() == 2000); // two runs that share a block are one run of blocks
}

TEST_CASE("ext4: content that gives its data out of order is an error naming the file", "[ext4]") {
    class Backwards final : public Content {
    public:
        uint64_t size() const override { return 3 * 4096; }
        void read(uint64_t, char* buf, size_t len) const override { std::memset(buf, 'b', len); }
        void for_each_chunk(const std::function<void(uint64_t, const char*, size_t)>& sink) const override {
            std::string block(4096, 'b');
            sink(8192, block.data(), block.size());
            sink(0, block.data(), block.size());
        }
        std::string describe() const override { return "a backwards reader"; }
    };
    Tree t("base", {1700000000, 0});
    t.put("/backwards", Entry::file(std::make_shared<Backwards>(), 0644, {}));
    TempDir d;
    uint64_t size = 32ull << 20;
    std::string img = empty_file(d, "b.ext4", size);
    auto r = ext4::write(t, img, 0, size, options());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("write '/backwards': a backwards reader gave 4096 bytes at 0, out of order"));
}
