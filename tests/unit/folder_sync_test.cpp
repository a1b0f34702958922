// FolderSync: a host folder written from a Tree, then updated in place from the next Tree, with the
// manifest of what imgbuild wrote. Checked on the host with lstat: inodes, mtimes, contents.
#include "core/error.hpp"
#include "helpers.hpp"
#include "outputs/file_store.hpp"
#include "outputs/folder_sync.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

// Entries owned by the builder, so that the tests need no root.
Entry own(Entry e) {
    e.uid = ::geteuid();
    e.gid = ::getegid();
    return e;
}
Entry d(uint32_t perm = 0755, int64_t mtime = 100) { return own(Entry::directory(perm, {mtime, 0})); }
Entry f(const std::string& data, uint32_t perm = 0644, int64_t mtime = 100) {
    return own(Entry::file(make_blob(data), perm, {mtime, 0}));
}

// A small root: the shape of a node's, with a hardlink pair under /usr.
Tree sample(int64_t mtime = 100) {
    Tree t("base", {mtime, 0});
    t.put("/", d(0755, mtime));
    for (const char* p : {"/etc", "/usr", "/usr/bin", "/var", "/var/log", "/var/cache"}) t.put(p, d(0755, mtime));
    t.put("/etc/hostname", f("node-1\n", 0644, mtime));
    t.put("/etc/motd", f("hello\n", 0644, mtime));
    t.put("/usr/bin/tool", f("#!/bin/sh\n", 0755, mtime));
    t.link("/usr/bin/tool-again", "/usr/bin/tool");
    t.put("/var/log/syslog", f("boot\n", 0640, mtime));
    t.put("/var/cache/old.bin", f("cache\n", 0644, mtime));
    t.put("/etc/link", own(Entry::symlink("motd", {mtime, 0})));
    return t;
}

struct Stat {
    ino_t ino = 0;
    int64_t mtime = 0;
    bool operator==(const Stat&) const = default;
};
Stat stat_of(const std::string& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return {st.st_ino, st.st_mtim.tv_sec};
}
bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}
std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
// Every name under `dir`, sorted: to see that no temporary is left.
std::string names_under(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        out.push_back(e.path().string().substr(dir.size()));
    std::sort(out.begin(), out.end());
    std::string s;
    for (const auto& n : out) s += n + "\n";
    return s;
}

// The first build: `tree` written whole as the new folder `dest`. Returns its manifest.
ManifestEntries first_build(const Tree& tree, const std::string& dest, FileStore* store = nullptr) {
    ContentSums sums;
    FolderOptions o;
    o.store = store;
    o.shared = [](std::string_view p) { return p.substr(0, 5) == "/usr/"; };
    FolderSync s(dest, {}, o, sums, true);
    s.write(tree);
    s.apply();
    return s.manifest();
}

} // namespace

TEST_CASE("a manifest reads back as written, names with newlines and backslashes too", "[folder_sync]") {
    Manifest m;
    m.folders.push_back({"tftp/b8-27-eb-00-00-01", {{"/", {'d', std::string(32, 'a')}}, {"/cmdline.txt", {'f', "-"}}}});
    m.folders.push_back({"nfs/w1", {{"/odd\nname\\x", {'l', std::string(32, '0')}}, {"/h", {'h', std::string(32, 'f')}}}});
    std::string text = manifest_text(m, "for node 'w1'");
    CHECK(text.substr(0, 36) == "imgbuild manifest 1\n# for node 'w1'\n");
    Manifest back = parse_manifest(text, "m");
    REQUIRE(back.folders.size() == 2);
    CHECK(back.folders[0] == m.folders[0]);
    CHECK(back.folders[1] == m.folders[1]);
    REQUIRE(back.find("nfs/w1"));
    CHECK(back.find("nfs/w1")->front().first == "/odd\nname\\x");
    CHECK(back.find("nfs") == nullptr);

    CHECK_THROWS_WITH(parse_manifest("not one\n", "m"), "m:1: not an imgbuild manifest (the first line is not 'imgbuild manifest 1')");
    CHECK_THROWS_WITH(parse_manifest("", "m"), "m: empty, not an imgbuild manifest");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nfolder ../etc\n", "m"),
                      "m:2: folder '../etc' is not a relative path without '..'");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nfolder /etc\n", "m"), "m:2: folder '/etc' is not a relative path without '..'");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nf - /x\n", "m"), "m:2: not a manifest entry: 'f - /x'");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nfolder a\nf 12 /x\n", "m"), "m:3: not a manifest entry: 'f 12 /x'");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nfolder a\nf - /x/../y\n", "m"), "m:3: not a manifest entry: 'f - /x/../y'");
    CHECK_THROWS_WITH(parse_manifest("imgbuild manifest 1\nfolder a\nq - /x\n", "m"), "m:3: not a manifest entry: 'q - /x'");
}

TEST_CASE("a second build of the same tree touches nothing, even when only mtimes moved", "[folder_sync]") {
    TempDir t;
    std::string dest = t.path() + "/root";
    ManifestEntries m = first_build(sample(), dest);
    CHECK(slurp(dest + "/etc/hostname") == "node-1\n");
    CHECK(stat_of(dest + "/usr/bin/tool").ino == stat_of(dest + "/usr/bin/tool-again").ino);
    CHECK(stat_of(dest + "/etc/motd").mtime == 100);
    std::string listing = names_under(dest);
    Stat hostname = stat_of(dest + "/etc/hostname"), root = stat_of(dest), tool = stat_of(dest + "/usr/bin/tool");

    ContentSums sums;
    FolderSync s(dest, m, {}, sums, false);
    s.write(sample(200)); // every mtime differs: a build stamped by the clock
    CHECK_FALSE(s.changes());
    CHECK(s.counts().unchanged == m.size());
    CHECK(s.counts().written == 0);
    s.apply();
    CHECK(s.manifest() == m);
    CHECK(stat_of(dest + "/etc/hostname") == hostname);
    CHECK(stat_of(dest) == root);
    CHECK(stat_of(dest + "/usr/bin/tool") == tool);
    CHECK(names_under(dest) == listing);
}

TEST_CASE("an update rewrites what changed, removes what went, and leaves the node's own files", "[folder_sync]") {
    TempDir t;
    std::string dest = t.path() + "/root";
    ManifestEntries m = first_build(sample(), dest);
    Stat motd = stat_of(dest + "/etc/motd"), tool = stat_of(dest + "/usr/bin/tool");
    // What the node did meanwhile: a log of its own, a line appended to a file imgbuild wrote, a
    // file in a folder that the recipe drops.
    std::ofstream(dest + "/var/log/node.log") << "mine\n";
    std::ofstream(dest + "/var/log/syslog", std::ios::app) << "more\n";
    std::ofstream(dest + "/var/cache/node.bin") << "mine\n";

    Tree next = sample();
    next.put("/etc/hostname", f("node-one\n"));   // changed content
    next.put("/etc/new", f("new\n"));             // new file
    next.put("/etc/new-dir", d(0700));            // new folder, with a file
    next.put("/etc/new-dir/x", f("x\n", 0600));
    next.remove("/var/cache");                    // gone: its file goes, the folder stays for node.bin
    next.edit("/usr/bin/tool")->content = make_blob("#!/bin/sh\nv2\n"); // changed: its hardlink follows
    next.edit("/etc")->perm = 0750;               // metadata only

    ContentSums sums;
    FolderSync s(dest, m, {}, sums, false);
    s.write(next);
    CHECK(s.changes());
    // Nothing is visible before apply(): the old files, and temporaries beside the new ones.
    CHECK(slurp(dest + "/etc/hostname") == "node-1\n");
    CHECK(exists(dest + "/etc/.hostname.imgbuild-tmp"));
    CHECK_FALSE(exists(dest + "/etc/new"));
    CHECK(exists(dest + "/var/cache/old.bin"));
    s.apply();

    CHECK(slurp(dest + "/etc/hostname") == "node-one\n");
    CHECK(slurp(dest + "/etc/new") == "new\n");
    CHECK(slurp(dest + "/etc/new-dir/x") == "x\n");
    struct stat st {};
    REQUIRE(::lstat((dest + "/etc/new-dir").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::lstat((dest + "/etc").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0750);
    CHECK(st.st_mtim.tv_sec == 100); // its contents changed, its mtime is the tree's
    CHECK(stat_of(dest + "/etc/motd") == motd);
    CHECK(stat_of(dest + "/usr/bin/tool") != tool);
    CHECK(stat_of(dest + "/usr/bin/tool").ino == stat_of(dest + "/usr/bin/tool-again").ino);
    CHECK(slurp(dest + "/usr/bin/tool-again") == "#!/bin/sh\nv2\n");
    CHECK(slurp(dest + "/var/log/node.log") == "mine\n");
    CHECK(slurp(dest + "/var/log/syslog") == "boot\nmore\n"); // unchanged in the recipe: the node's lines stay
    CHECK_FALSE(exists(dest + "/var/cache/old.bin"));
    CHECK(slurp(dest + "/var/cache/node.bin") == "mine\n");
    CHECK(s.counts().removed == 1);
    CHECK(s.counts().kept == 1);
    CHECK(names_under(dest).find("imgbuild-tmp") == std::string::npos);
    // The kept folder is no longer imgbuild's: the next manifest leaves it out.
    bool listed = false;
    for (const auto& [p, item] : s.manifest()) listed = listed || p == "/var/cache";
    CHECK_FALSE(listed);
}

TEST_CASE("an update that is discarded leaves the folder as it was", "[folder_sync]") {
    TempDir t;
    std::string dest = t.path() + "/root";
    ManifestEntries m = first_build(sample(), dest);
    std::string listing = names_under(dest);
    Stat hostname = stat_of(dest + "/etc/hostname");
    Tree next = sample();
    next.put("/etc/hostname", f("other\n"));
    next.put("/etc/new-dir", d());
    next.put("/etc/new-dir/x", f("x\n"));
    next.remove("/var/log/syslog");
    ContentSums sums;
    FolderSync s(dest, m, {}, sums, false);
    s.write(next);
    auto pending = s.pending_manifest();
    s.discard();
    CHECK(names_under(dest) == listing);
    CHECK(stat_of(dest + "/etc/hostname") == hostname);
    CHECK(slurp(dest + "/var/log/syslog") == "boot\n");
    // While applying, the manifest on disk marks what is being replaced or removed: the next build
    // redoes it whatever state the folder was left in.
    std::string redone;
    for (const auto& [p, item] : pending)
        if (item.fingerprint == "-") redone += p + " ";
    CHECK(redone == "/etc/hostname /etc/new-dir /etc/new-dir/x /var/log/syslog ");
    CHECK(pending.size() == m.size() + 2);
}

TEST_CASE("an update never writes through a symlink or over a folder holding others' files", "[folder_sync]") {
    TempDir t;
    std::string dest = t.path() + "/root";
    ManifestEntries m = first_build(sample(), dest);
    // The node made /var/log a symlink to a folder elsewhere.
    std::filesystem::create_directory(t.path() + "/elsewhere");
    std::ofstream(t.path() + "/elsewhere/syslog") << "outside\n";
    std::filesystem::rename(dest + "/var/log", dest + "/var/log.moved");
    std::filesystem::create_directory_symlink(t.path() + "/elsewhere", dest + "/var/log");

    ContentSums sums;
    Tree next = sample();
    next.put("/var/log/syslog", f("changed\n", 0640));
    FolderSync s(dest, m, {}, sums, false);
    CHECK_THROWS_WITH(s.write(next), "'" + dest + "/var/log' is a symlink on the host, where the recipe has a folder holding what changed "
                                                  "('/var/log/syslog'); imgbuild writes nothing through it or in its place, as the node may "
                                                  "have made it so: put the folder back, or remove '" + dest + "' to have it written afresh");
    s.discard();
    // Removing /var/log/syslog from the recipe removes nothing through the link either.
    Tree without = sample();
    without.remove("/var/log/syslog");
    FolderSync r(dest, m, {}, sums, false);
    r.write(without);
    r.apply();
    CHECK(slurp(t.path() + "/elsewhere/syslog") == "outside\n");

    // A folder of imgbuild's that the recipe now has as a file: replaced when it holds only
    // imgbuild's files, refused when it holds the node's.
    std::filesystem::remove(dest + "/var/log");
    std::filesystem::rename(dest + "/var/log.moved", dest + "/var/log");
    Tree as_file = sample();
    as_file.remove("/var/log");
    as_file.put("/var/log", f("a file now\n"));
    std::ofstream(dest + "/var/log/node.log") << "mine\n";
    FolderSync refused(dest, m, {}, sums, false);
    CHECK_THROWS_WITH(refused.write(as_file), "'" + dest + "/var/log/node.log' was not written by imgbuild, and the recipe now has a "
                                              "non-folder where its folder '" + dest + "/var/log' is: move it away and build again");
    refused.discard();
    std::filesystem::remove(dest + "/var/log/node.log");
    FolderSync replaced(dest, m, {}, sums, false);
    replaced.write(as_file);
    replaced.apply();
    CHECK(slurp(dest + "/var/log") == "a file now\n");
}

TEST_CASE("files from a store stay linked to it across updates, and a store left by a build is reused", "[folder_sync]") {
    TempDir t;
    std::string dest = t.path() + "/root";
    {
        FileStore store(t.path() + "/.store");
        first_build(sample(), dest, &store);
    }
    Stat tool = stat_of(dest + "/usr/bin/tool");
    struct stat st {};
    REQUIRE(::lstat((dest + "/usr/bin/tool").c_str(), &st) == 0);
    CHECK(st.st_nlink == 3); // the store's name, tool and tool-again

    // A second folder from the same store, as a new node of a later build: the same inodes.
    FileStore again(t.path() + "/.store");
    first_build(sample(), t.path() + "/other", &again);
    CHECK(again.added() == 0);
    CHECK(stat_of(t.path() + "/other/usr/bin/tool") == tool);
    CHECK(again.collect_garbage() == 0);

    // A stored file written through a link (its mtime moves) is not handed out again.
    std::ofstream(t.path() + "/other/usr/bin/tool", std::ios::app) << "# edited in place\n";
    FileStore third(t.path() + "/.store");
    first_build(sample(), t.path() + "/third", &third);
    CHECK(third.added() == 1);
    CHECK(slurp(t.path() + "/third/usr/bin/tool") == "#!/bin/sh\n");

    // Once no folder links a stored file, garbage collection removes it.
    std::filesystem::remove_all(t.path() + "/third");
    CHECK(third.collect_garbage() == 1);
}

TEST_CASE("a folder written by several threads: every entry once, equal files one stored inode", "[folder_sync]") {
    Tree tree("base", {100, 0});
    tree.put("/", d());
    for (int i = 0; i < 20; ++i) {
        std::string dir = "/usr/d" + std::to_string(i);
        tree.put(dir, d());
        for (int j = 0; j < 50; ++j) {
            // Every fifth file the same bytes and metadata: one stored file that several threads want.
            std::string data = j % 5 == 0 ? "same\n" : dir + "/" + std::to_string(j) + "\n";
            tree.put(dir + "/f" + std::to_string(j), f(data, 0644));
        }
        tree.put(dir + "/copy", f(std::string(5000, char('a' + i))));
        tree.put(dir + "/link", own(Entry::symlink("f1", {100, 0})));
    }
    TempDir t;
    ContentSums sums;
    FileStore store(t.path() + "/.store", &sums);
    FolderOptions o;
    o.store = &store;
    o.shared = [](std::string_view p) { return p.find("/copy") == std::string_view::npos; };
    o.threads = 4;
    FolderSync s(t.path() + "/root", {}, o, sums, true);
    s.write(tree);
    std::string r = t.path() + "/root";
    for (int i = 0; i < 20; ++i) {
        std::string dir = r + "/usr/d" + std::to_string(i);
        CHECK(slurp(dir + "/f7") == "/usr/d" + std::to_string(i) + "/7\n");
        CHECK(stat_of(dir + "/f5").ino == stat_of(r + "/usr/d0/f0").ino);
        CHECK(slurp(dir + "/copy") == std::string(5000, char('a' + i)));
        struct stat st {};
        REQUIRE(::lstat((dir + "/copy").c_str(), &st) == 0);
        CHECK(st.st_nlink == 1);
        REQUIRE(::lstat((dir + "/link").c_str(), &st) == 0);
        CHECK(S_ISLNK(st.st_mode));
        CHECK(stat_of(dir).mtime == 100);
    }
    CHECK(store.files() == 20 * 40 + 1);
    CHECK(s.counts().written == tree.size());
}
