#include "core/error.hpp"
#include "ext/archive.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

// A tree with one of everything a root filesystem holds.
Tree sample_tree() {
    Tree t("base", {1600000000, 5});
    Entry suid = file("\x7f" "ELF binary", 04755);
    suid.xattrs["security.capability"] = std::string("\x01\x00\x00\x02\x00\x20\x00\x00", 8) + std::string(12, '\0');
    t.put("/usr/bin/ping", suid);
    t.link("/bin/ping-link", "/usr/bin/ping");
    Entry dev;
    dev.type = FileType::CharDevice;
    dev.perm = 0666;
    dev.rdev_major = 1;
    dev.rdev_minor = 3;
    t.put("/dev/null", dev);
    Entry fifo;
    fifo.type = FileType::Fifo;
    fifo.perm = 0600;
    t.put("/run/initctl", fifo);
    t.put("/lib", link("usr/lib"));
    Entry owned = file("secret", 0640);
    owned.uid = 1234;
    owned.gid = 5678;
    t.put("/home/u/x", owned);
    // 8 MiB with data at 1 MiB and at the end: a sparse file.
    Tree scratch;
    auto spool = Spool::create();
    spool->begin();
    spool->add(1 << 20, "data", 4);
    spool->add((8 << 20) - 3, "end", 3);
    t.put("/var/sparse", Entry::file(spool->finish(8 << 20), 0644, {}));
    return t;
}

} // namespace

TEST_CASE("tar round trip keeps every kind of entry, owners, xattrs, hardlinks and holes", "[archive]") {
    TempDir d;
    Tree in = sample_tree();
    for (const char* name : {"a.tar", "a.tar.gz", "a.tar.xz", "a.tar.zst"}) {
        std::string f = d.path() + "/" + name;
        archive::TarOptions options;
        options.compression = archive::compression_for(f).value();
        REQUIRE(archive::write_tarball(in, f, options).ok());
        Tree out("base");
        auto r = archive::read_tarball(f, out);
        INFO(name << ": " << (r.ok() ? "" : r.error()));
        REQUIRE(r.ok());
        CHECK(detailed_listing(out) == detailed_listing(in));
        // The hole survives as a hole: only the two data runs are stored.
        auto extents = out.get("/var/sparse")->content->extents();
        REQUIRE(extents.size() == 2);
        CHECK(extents[0] == Extent{1 << 20, 4});
    }
}

TEST_CASE("the same tree always gives the same tar bytes", "[archive]") {
    TempDir d;
    archive::TarOptions options;
    options.compression = archive::TarOptions::Compression::Gzip;
    REQUIRE(archive::write_tarball(sample_tree(), d.path() + "/1.tar.gz", options).ok());
    REQUIRE(archive::write_tarball(sample_tree(), d.path() + "/2.tar.gz", options).ok());
    CHECK(sha256_file(d.path() + "/1.tar.gz").value() == sha256_file(d.path() + "/2.tar.gz").value());
    // gzip's header has a time field: it must not hold the time of the build.
    std::ifstream gz(d.path() + "/1.tar.gz", std::ios::binary);
    char header[8] = {};
    gz.read(header, 8);
    CHECK(std::string(header + 4, 4) == std::string(4, '\0'));
}

TEST_CASE("bad tarballs give one clear error", "[archive]") {
    TempDir d;
    Tree t;
    std::string garbage = d.write("garbage.tar", std::string(4096, 'x'));
    auto r = archive::read_tarball(garbage, t);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("garbage.tar"));
    auto missing = archive::read_tarball(d.path() + "/none.tar", t);
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.error(), Catch::Contains("none.tar"));
    CHECK_FALSE(archive::compression_for("x.zip").ok());
}
