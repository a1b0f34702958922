#include "core/acl.hpp"
#include "ext/ext2fs.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <sys/xattr.h>

using namespace ib;
using namespace ib::test;

namespace {

// ext4's on-disk ACL: version 1, then 4-byte entries, 8 bytes for named users and groups.
std::string ext4_acl(std::initializer_list<acl::AclEntry> entries) {
    std::string out;
    auto put = [&out](uint32_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    put(1, 4);
    for (const auto& e : entries) {
        put(e.tag, 2);
        put(e.perm, 2);
        if (e.tag == acl::User || e.tag == acl::Group) put(e.id, 4);
    }
    return out;
}

std::string kernel_xattr(const std::string& path, const char* name) {
    std::string v(4096, '\0');
    ssize_t n = ::lgetxattr(path.c_str(), name, v.data(), v.size());
    REQUIRE(n > 0);
    v.resize(static_cast<size_t>(n));
    return v;
}

} // namespace

TEST_CASE("acl: ext4's on-disk layout converts to the kernel's", "[acl]") {
    std::string disk = ext4_acl({{acl::UserObj, 7}, {acl::User, 6, 1000}, {acl::GroupObj, 5}, {acl::Group, 5, 4},
                                 {acl::Mask, 7}, {acl::Other, 5}});
    auto kernel = acl::from_ext4(disk);
    REQUIRE(kernel);
    auto entries = acl::decode(*kernel);
    REQUIRE(entries);
    REQUIRE(entries->size() == 6);
    CHECK((*entries)[1].tag == acl::User);
    CHECK((*entries)[1].id == 1000);
    CHECK((*entries)[1].perm == 6);
    CHECK((*entries)[3].id == 4);
    CHECK((*entries)[5].perm == 5);
    // A value already in the kernel's layout is kept as it is.
    CHECK(acl::from_ext4(*kernel) == kernel);
}

TEST_CASE("acl: a truncated or unknown ext4 ACL is refused, not guessed at", "[acl]") {
    std::string good = ext4_acl({{acl::UserObj, 7}, {acl::User, 6, 1000}, {acl::Other, 5}});
    CHECK_FALSE(acl::from_ext4(""));
    CHECK_FALSE(acl::from_ext4(std::string("\x01\x00\x00", 3)));
    CHECK_FALSE(acl::from_ext4(good.substr(0, good.size() - 1)));
    CHECK_FALSE(acl::from_ext4(good.substr(0, 4 + 4 + 6))); // the named user's id cut short
    CHECK_FALSE(acl::from_ext4(ext4_acl({{0x40, 7}})));
    CHECK_FALSE(acl::from_ext4(std::string("\x03\x00\x00\x00", 4) + good.substr(4)));
    CHECK(acl::from_ext4(std::string("\x01\x00\x00\x00", 4)) == std::string("\x02\x00\x00\x00", 4));
}

// What a real image holds: mke2fs -d stores the source folder's ACLs in ext4's layout; the reader must
// give back what the kernel's getxattr gives for the source, byte for byte.
TEST_CASE("acl: ACLs in an image made by mke2fs -d read back as the kernel gives them", "[acl][ext4]") {
    TempDir d;
    std::string src = d.path() + "/root";
    d.write("root/var/log/journal/.keep", "");
    d.write("root/srv/file", "x\n");
    std::string cmd = "setfacl -m g:adm:r-x,m::r-x " + src + "/var/log/journal && setfacl -d -m g:adm:r-x " + src +
                      "/var/log/journal && setfacl -m u:1234:rw- " + src + "/srv/file && mke2fs -q -F -t ext4 -d " +
                      src + " " + d.path() + "/root.ext4 16M";
    REQUIRE(std::system(cmd.c_str()) == 0); // setfacl (acl) and mke2fs (e2fsprogs) are test dependencies

    Tree t("base");
    auto r = ext2::read_tree(ImageFile::open(d.path() + "/root.ext4"), 0, "test", t, "/");
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());
    const Entry* journal = t.get("/var/log/journal");
    REQUIRE(journal);
    CHECK(journal->xattrs.at(acl::k_access) == kernel_xattr(src + "/var/log/journal", acl::k_access));
    CHECK(journal->xattrs.at(acl::k_default) == kernel_xattr(src + "/var/log/journal", acl::k_default));
    CHECK(t.get("/srv/file")->xattrs.at(acl::k_access) == kernel_xattr(src + "/srv/file", acl::k_access));
    CHECK(t.get("/srv/file")->xattrs.count("system.data") == 0);
}
