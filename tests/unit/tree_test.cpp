#include "core/error.hpp"
#include "core/tree.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

TEST_CASE("paths are normalised and never climb above the root", "[path]") {
    CHECK(path::normalise("etc//x/./y/../z") == "/etc/x/z");
    CHECK(path::normalise("../../..") == "/");
    CHECK(path::normalise("") == "/");
    CHECK(path::normalise("/a/b/") == "/a/b");
    CHECK(path::parent("/etc/hosts") == "/etc");
    CHECK(path::parent("/etc") == "/");
    CHECK(path::name("/etc/hosts") == "hosts");
    CHECK(path::join("/etc", "../../x") == "/x");
    CHECK(path::is_within("/a/b", "/a"));
    CHECK_FALSE(path::is_within("/ab", "/a"));
}

TEST_CASE("walk order puts a folder right before its contents", "[tree]") {
    Tree t;
    t.put("/a-b", file("1"));
    t.put("/a/z", file("2"));
    t.put("/a.txt", file("3"));
    t.put("/a/b/c", file("4"));
    CHECK(listing(t) == "/ directory\n/a directory\n/a/b directory\n/a/b/c file\n/a/z file\n/a-b file\n/a.txt file\n");
}

TEST_CASE("put creates missing parents and refuses a file as a parent", "[tree]") {
    Tree t;
    t.put("/etc/x/y", file("y"));
    REQUIRE(t.get("/etc/x"));
    CHECK(t.get("/etc/x")->is_dir());
    CHECK(t.read_file("/etc/x/y") == "y");
    t.put("/f", file("f"));
    CHECK_THROWS_WITH(t.put("/f/g", file("g")), Catch::Contains("'/f' is a file, not a directory"));
    CHECK_THROWS_AS(t.put("/none/g", file("g"), false), Error);
}

TEST_CASE("symlinks resolve inside the tree, never to the host", "[tree][symlink]") {
    Tree t;
    t.put("/tmp", dir(01777));
    t.put("/etc", link("/tmp/outside"));
    t.write_file("/etc/x", "inside");
    // The absolute link is taken relative to the tree's root: the file lands in the tree's /tmp/outside.
    REQUIRE(t.get("/tmp/outside/x"));
    CHECK(t.read_file("/tmp/outside/x") == "inside");
    CHECK(t.get("/etc")->type == FileType::Symlink);

    t.put("/a/b", dir());
    t.put("/a/b/up", link("../../../../../../escape"));
    CHECK(t.resolve("/a/b/up/file") == "/escape/file");
    t.write_file("/a/b/up/file", "z");
    CHECK(t.read_file("/escape/file") == "z");
}

TEST_CASE("relative links, '..' through links, and loops", "[tree][symlink]") {
    Tree t;
    t.put("/usr/lib/x/real", file("r"));
    t.put("/lib", link("usr/lib"));
    CHECK(t.resolve("/lib/x/real") == "/usr/lib/x/real");
    // ".." after a link goes to the parent of the link's target, as the kernel does.
    CHECK(t.resolve("/lib/x/../x/real") == "/usr/lib/x/real");
    CHECK(t.resolve("/lib/..") == "/usr");
    CHECK(t.resolve("/lib", false) == "/lib");
    t.put("/loop1", link("/loop2"));
    t.put("/loop2", link("/loop1"));
    CHECK_THROWS_WITH(t.resolve("/loop1/x"), Catch::Contains("too many levels of symbolic links"));
}

TEST_CASE("layers: a fork sees the lower layers and writes only its own", "[tree][layers]") {
    Tree base;
    base.put("/etc/hostname", file("base\n"));
    base.put("/etc/keep", file("k"));
    base.push_layer("recipe");
    base.write_file("/etc/recipe", "r");

    Tree a = base.fork("node a");
    Tree b = base.fork("node b");
    a.write_file("/etc/hostname", "a\n");
    b.remove("/etc/keep");
    CHECK(a.read_file("/etc/hostname") == "a\n");
    CHECK(b.read_file("/etc/hostname") == "base\n");
    CHECK(base.read_file("/etc/hostname") == "base\n");
    CHECK(a.exists("/etc/keep"));
    CHECK_FALSE(b.exists("/etc/keep"));
    CHECK(base.exists("/etc/keep"));
    CHECK(a.read_file("/etc/recipe") == "r");

    // Writing to the original after forking leaves the forks alone (copy on write of the shared top).
    base.write_file("/etc/recipe", "changed");
    CHECK(a.read_file("/etc/recipe") == "r");
    auto layers = b.layers();
    REQUIRE(layers.size() == 3);
    CHECK(layers[2].name == "node b");
    CHECK(layers[2].whiteouts == 1);
}

TEST_CASE("removing a folder hides everything below it in lower layers", "[tree][layers]") {
    Tree t;
    t.put("/usr/share/doc/a/copyright", file("c"));
    t.put("/usr/share/doc/b/README", file("r"));
    t.push_layer("recipe");
    CHECK(t.remove("/usr/share/doc"));
    CHECK_FALSE(t.exists("/usr/share/doc/a/copyright"));
    CHECK(listing(t) == "/ directory\n/usr directory\n/usr/share directory\n");
    // A new folder of the same name starts empty.
    t.put("/usr/share/doc", dir());
    CHECK(t.children("/usr/share/doc").empty());
    CHECK_FALSE(t.remove("/nothing"));
}

TEST_CASE("replacing a folder by a file drops its contents", "[tree]") {
    Tree t;
    t.put("/x/y", file("y"));
    t.put("/x", file("now a file"));
    CHECK(listing(t) == "/ directory\n/x file\n");
}

TEST_CASE("hardlinks survive removal of the name they point at", "[tree][hardlink]") {
    Tree t;
    t.put("/bin/a", file("payload", 04755));
    t.link("/usr/bin/b", "/bin/a");
    t.link("/sbin/c", "/bin/a");
    CHECK(t.find("/usr/bin/b")->perm == 04755);
    CHECK(read_all(t.find("/sbin/c")->content) == "payload");
    t.push_layer("recipe");
    t.remove("/bin/a");
    // The first remaining name in walk order holds the content now; the other points at it.
    REQUIRE(t.get("/sbin/c"));
    CHECK(t.get("/sbin/c")->type == FileType::Regular);
    CHECK(t.get("/usr/bin/b")->type == FileType::Hardlink);
    CHECK(t.get("/usr/bin/b")->link == "/sbin/c");
    CHECK(read_all(t.find("/usr/bin/b")->content) == "payload");
}

TEST_CASE("write_file keeps owner, mode and xattrs of the file it replaces", "[tree]") {
    Tree t;
    Entry e = file("old", 0600);
    e.uid = 1000;
    e.gid = 1000;
    e.xattrs["user.x"] = "1";
    t.put("/home/pi/.profile", e);
    t.write_file("/home/pi/.profile", "new");
    const Entry* got = t.get("/home/pi/.profile");
    CHECK(got->uid == 1000);
    CHECK(got->perm == 0600);
    CHECK(got->xattrs.at("user.x") == "1");
    CHECK(read_all(got->content) == "new");
}

TEST_CASE("glob matches inside the tree", "[tree][glob]") {
    Tree t;
    t.put("/etc/ssh/ssh_host_rsa_key", file("k"));
    t.put("/etc/ssh/ssh_host_rsa_key.pub", file("p"));
    t.put("/etc/ssh/sshd_config", file("c"));
    t.put("/usr/share/doc/bash/changelog.gz", file("x"));
    t.put("/usr/share/doc/zsh/changelog.Debian.gz", file("x"));
    t.put("/usr/share/doc/zsh/copyright", file("x"));
    t.put("/etc2", link("/etc"));
    CHECK(t.glob("/etc/ssh/ssh_host_*") ==
          std::vector<std::string>{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub"});
    CHECK(t.glob("/usr/share/doc/*/changelog*.gz") ==
          std::vector<std::string>{"/usr/share/doc/bash/changelog.gz", "/usr/share/doc/zsh/changelog.Debian.gz"});
    CHECK(t.glob("/etc2/ssh/sshd_*") == std::vector<std::string>{"/etc/ssh/sshd_config"});
    CHECK(t.glob("/etc/nothing*").empty());
}
