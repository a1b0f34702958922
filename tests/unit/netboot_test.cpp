#include "core/build.hpp"
#include "core/recipe.hpp"
#include "core/staging.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "outputs/dir_writer.hpp"
#include "outputs/file_store.hpp"
#include "outputs/netboot.hpp"
#include "outputs/output.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

netboot::Options opts() {
    netboot::Options o;
    o.server = "10.0.0.1";
    o.subnet = "10.0.0.0";
    o.netmask = "255.255.255.0";
    return o;
}

NodeSpec node(const std::string& name, const std::string& mac, const std::string& serial) {
    NodeSpec n;
    n.name = name;
    n.fields["name"] = name;
    if (!mac.empty()) n.fields["mac"] = mac;
    if (!serial.empty()) n.fields["serial"] = serial;
    return n;
}

std::unique_ptr<Output> parse_netboot(const std::string& yaml, Diagnostics& diag) {
    Doc doc = yaml::parse(yaml, "t.yaml", diag);
    const auto& e = doc.entries().front();
    OutputParseEnv env{diag, "output 'netboot'", e.key_mark};
    return find_output_type("netboot")->parse(e.value, env);
}

std::string netboot_error(const std::string& yaml) {
    Diagnostics diag;
    parse_netboot(yaml, diag);
    try {
        diag.checkpoint();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// `e` owned by the builder, so that the output can write it without root.
Entry mine(Entry e) {
    e.uid = ::geteuid();
    e.gid = ::getegid();
    return e;
}

ino_t inode(const std::string& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_ino;
}

} // namespace

TEST_CASE("netboot cmdline: root= becomes the node's NFS root, SD-only arguments go, the rest stays once", "[netboot]") {
    auto o = opts();
    CHECK(netboot::cmdline("console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes "
                           "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cgroup_enable=memory "
                           "cgroup_memory=1 cgroup_enable=memory\n",
                           o, "worker-1") ==
          "console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/worker-1,vers=3,tcp rw ip=dhcp "
          "rootwait quiet cgroup_enable=memory cgroup_memory=1\n");
    o.nfs_version = 4;
    o.export_base = "/exports";
    // No root= at all: the NFS arguments go at the end; ip= and rw/ro are replaced, resize goes.
    CHECK(netboot::cmdline("ro ip=10.0.0.5 resize dwc_otg.lpm_enable=0", o, "n") ==
          "dwc_otg.lpm_enable=0 root=/dev/nfs nfsroot=10.0.0.1:/exports/n,vers=4,tcp rw ip=dhcp rootwait\n");
    // A quoted argument stays one argument.
    CHECK(netboot::cmdline("root=/dev/mmcblk0p2 x=\"a b\"", o, "n") ==
          "root=/dev/nfs nfsroot=10.0.0.1:/exports/n,vers=4,tcp rw ip=dhcp rootwait x=\"a b\"\n");
    CHECK(netboot::cmdline("", o, "n") == "root=/dev/nfs nfsroot=10.0.0.1:/exports/n,vers=4,tcp rw ip=dhcp rootwait\n");
}

TEST_CASE("netboot fstab: the SD card's root and boot lines go, everything else stays", "[netboot]") {
    CHECK(netboot::fstab("proc /proc proc defaults 0 0\nPARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\n"
                         "PARTUUID=1234abcd-02 / ext4 defaults,noatime 0 1\ntmpfs /tmp tmpfs defaults 0 0\n",
                         "/boot/firmware") == "proc /proc proc defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n");
    CHECK(netboot::fstab("# LABEL=x / ext4\nLABEL=RASPIROOT / ext4 rw 0 1\nLABEL=RASPIFIRM /boot/firmware vfat rw 0 2\n"
                         "UUID=abcd /data ext4 defaults 0 2\n/dev/mmcblk0p1 /boot vfat defaults 0 0",
                         "/boot") == "# LABEL=x / ext4\nLABEL=RASPIFIRM /boot/firmware vfat rw 0 2\nUUID=abcd /data ext4 defaults 0 2\n");
}

TEST_CASE("netboot TFTP folders are named as the bootloader asks", "[netboot]") {
    auto o = opts();
    CHECK(netboot::folder_for(o, node("a", "b8:27:eb:12:34:56", "")) == "b8-27-eb-12-34-56");
    o.prefix = netboot::Prefix::Serial;
    CHECK(netboot::folder_for(o, node("a", "", "a1b2c3d4")) == "a1b2c3d4");
    try {
        netboot::folder_for(o, node("worker-2", "b8:27:eb:12:34:56", ""));
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "node 'worker-2' has no serial: its TFTP folder is named by it (prefix: serial); "
                                       "give the node a serial, or choose prefix: mac");
    }
    o.prefix = netboot::Prefix::None;
    CHECK(netboot::folder_for(o, node("a", "", "")).empty());
}

TEST_CASE("netboot fsids are stable, non-zero and distinct", "[netboot]") {
    std::vector<std::string> names;
    for (int i = 0; i < 500; ++i) names.push_back("worker-" + std::to_string(i));
    auto ids = netboot::fsids(names);
    std::set<uint32_t> distinct(ids.begin(), ids.end());
    CHECK(distinct.size() == names.size());
    CHECK(distinct.count(0) == 0);
    CHECK(netboot::fsids({"worker-7"}).front() == ids[7]);
    // The README's derivation, computed apart: printf 'imgbuild netboot a' | sha256sum gives 4454ed83...
    // whose first 31 bits are 0x4454ed83 & 0x7fffffff = 1146416515.
    CHECK(netboot::fsids({"a"}) == std::vector<uint32_t>{1146416515u});
    CHECK(ids[7] == 740323553u); // worker-7: ac2070e1... & 0x7fffffff
    CHECK(netboot::fsids({"a", "a"}) == std::vector<uint32_t>{1146416515u, 1146416516u}); // a clash moves the later one
}

TEST_CASE("netboot server files", "[netboot]") {
    auto o = opts();
    std::vector<netboot::NodeRow> rows = {{"w1", "b8:27:eb:00:00:01", "a1b2c301", "10.0.0.11/24", "b8-27-eb-00-00-01"},
                                          {"w2", "", "a1b2c302", "", "b8-27-eb-00-00-02"}};
    std::string conf = netboot::dnsmasq_conf(o, "worker");
    for (const char* line : {"\nport=0\n", "\ndhcp-range=10.0.0.0,proxy,255.255.255.0\n", "\nenable-tftp\n",
                             "\ntftp-root=/srv/tftp\n", "\ntftp-unique-root=mac\n", "\npxe-service=0,\"Raspberry Pi Boot\"\n"})
        CHECK(conf.find(line) != std::string::npos);
    o.prefix = netboot::Prefix::Serial;
    CHECK(netboot::dnsmasq_conf(o, "worker").find("tftp-unique-root") == std::string::npos);
    // fsids by sha256sum of "imgbuild netboot w1" and "... w2" (see the fsids test).
    std::string ex = netboot::exports(o, rows);
    CHECK(ex.find("\n/srv/nfs/w1  *(rw,sync,no_subtree_check,no_root_squash,fsid=1193213161)\n") != std::string::npos);
    CHECK(ex.find("\n/srv/nfs/w2  *(rw,sync,no_subtree_check,no_root_squash,fsid=1217697521)\n") != std::string::npos);
    CHECK(netboot::nodes_table(o, rows) ==
          "NAME  MAC                SERIAL    IP            TFTP                     NFS\n"
          "w1    b8:27:eb:00:00:01  a1b2c301  10.0.0.11/24  tftp/b8-27-eb-00-00-01/  10.0.0.1:/srv/nfs/w1\n"
          "w2    -                  a1b2c302  -             tftp/b8-27-eb-00-00-02/  10.0.0.1:/srv/nfs/w2\n");
}

TEST_CASE("netboot options are checked, each error at its value", "[netboot]") {
    CHECK(netboot_error("netboot: {server: 10.0.0.1}") == "");
    CHECK(netboot_error("netboot: {server: 10.0.0.300}") == "t.yaml:1:19: output 'netboot': server '10.0.0.300' is not an IPv4 address");
    CHECK(netboot_error("netboot: {server: 10.0.0.1/24}") ==
          "t.yaml:1:19: output 'netboot': server '10.0.0.1/24' must be an address without a /prefix");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, prefix: ip}") == "t.yaml:1:37: output 'netboot': prefix 'ip' is not mac, serial or none");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, subnet: 192.168.1.0/24}") ==
          "t.yaml:1:37: output 'netboot': server 10.0.0.1 is not in subnet 192.168.1.0/24");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, subnet: 10.0.0.0}") ==
          "t.yaml:1:37: output 'netboot': subnet '10.0.0.0' needs a /prefix, such as 10.0.0.0/24");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, tftp_root: ../x}") ==
          "t.yaml:1:40: output 'netboot': tftp_root '../x' must be a folder inside the output folder (--out), relative and without '..'");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, nfs_root: tftp/nfs}") ==
          "t.yaml:1:10: output 'netboot': tftp_root 'tftp' and nfs_root 'tftp/nfs' overlap; give each its own folder");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, export_base: srv/nfs}") ==
          "t.yaml:1:42: output 'netboot': export_base 'srv/nfs' must be an absolute path on the server "
          "without blanks, commas, quotes, '#' or '\\'");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, nfs_version: 2}") == "t.yaml:1:42: output 'netboot': nfs_version 2 is not 3 or 4");
    CHECK(netboot_error("netboot: {server: 10.0.0.1, share: all}") == "t.yaml:1:36: output 'netboot': share 'all' is not auto, none or export");
    CHECK(netboot_error("netboot: {}") == "t.yaml:1:10: output 'netboot': missing required key 'server'");
}

TEST_CASE("netboot writes per-node TFTP folders and NFS roots sharing what may be shared", "[netboot]") {
    Tree tree;
    tree.put("/", mine(dir()));
    for (const char* d : {"/boot", "/boot/firmware", "/boot/firmware/overlays", "/usr", "/usr/bin", "/etc", "/var", "/var/lib",
                          "/var/lib/apt", "/var/lib/apt/lists", "/var/lib/apt/lists/partial", "/var/cache", "/var/cache/apt",
                          "/var/cache/apt/archives"})
        tree.put(d, mine(dir()));
    tree.put("/bin", mine(link("usr/bin")));
    // apt replaces its lists and downloaded packages by rename only: shared; its lock and caches: not.
    tree.put("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-arm64_Packages", mine(file("Package: x\n")));
    tree.put("/var/lib/apt/lists/lock", mine(file("", 0640)));
    tree.put("/var/lib/apt/lists/partial/half", mine(file("half")));
    tree.put("/var/cache/apt/archives/x_1_arm64.deb", mine(file("!<arch>\n")));
    tree.put("/var/cache/apt/archives/lock", mine(file("", 0640)));
    tree.put("/var/cache/apt/pkgcache.bin", mine(file("cache")));
    tree.put("/boot/firmware/bootcode.bin", mine(file("rom")));
    tree.put("/boot/firmware/start.elf", mine(file("elf", 0755)));
    tree.put("/boot/firmware/overlays/x.dtbo", mine(file("dtbo")));
    tree.put("/boot/firmware/cmdline.txt", mine(file("console=tty1 root=PARTUUID=1234abcd-02 rootwait\n")));
    tree.put("/usr/bin/tool", mine(file("#!/bin/sh\n", 0755)));
    tree.put("/etc/hostname", mine(file("pi\n")));
    tree.put("/etc/fstab", mine(file("proc /proc proc defaults 0 0\nPARTUUID=1234abcd-02 / ext4 defaults 0 1\n")));

    Diagnostics diag;
    auto a = parse_netboot("netboot: {server: 10.0.0.1}", diag);
    auto b = parse_netboot("netboot: {server: 10.0.0.1}", diag);
    diag.checkpoint();
    NodeSpec n1 = node("w1", "b8:27:eb:00:00:01", ""), n2 = node("w2", "b8:27:eb:00:00:02", "");
    TempDir out;
    {
        Staging staging(out.path());
        OutputWriteEnv env;
        env.now = {1700000000, 0};
        env.identity = "r";
        env.threads = 2; // the second node's root is written in the background
        env.node = &n1;
        a->write(tree, staging, env);
        env.node = &n2;
        b->write(tree, staging, env);
        a->finish(staging, {{a.get(), &n1}, {b.get(), &n2}}, env);
        staging.commit();
    }
    std::string t = out.path() + "/tftp/", n = out.path() + "/nfs/";
    CHECK(slurp(t + "b8-27-eb-00-00-01/cmdline.txt") ==
          "console=tty1 root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/w1,vers=3,tcp rw ip=dhcp rootwait\n");
    CHECK(slurp(t + "b8-27-eb-00-00-02/cmdline.txt").find("nfsroot=10.0.0.1:/srv/nfs/w2,") != std::string::npos);
    CHECK(inode(t + "b8-27-eb-00-00-01/start.elf") == inode(t + "b8-27-eb-00-00-02/start.elf"));
    CHECK(inode(t + "b8-27-eb-00-00-01/overlays/x.dtbo") == inode(t + "b8-27-eb-00-00-02/overlays/x.dtbo"));
    CHECK(inode(t + "bootcode.bin") == inode(t + "b8-27-eb-00-00-01/bootcode.bin"));
    CHECK(inode(t + "b8-27-eb-00-00-01/cmdline.txt") != inode(t + "b8-27-eb-00-00-02/cmdline.txt"));
    CHECK(slurp(t + "b8-27-eb-00-00-01/start.elf") == "elf");

    CHECK(inode(n + "w1/usr/bin/tool") == inode(n + "w2/usr/bin/tool"));
    CHECK(inode(n + "w1/etc/hostname") != inode(n + "w2/etc/hostname"));
    const std::string packages = "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-arm64_Packages";
    CHECK(inode(n + "w1/" + packages) == inode(n + "w2/" + packages));
    CHECK(inode(n + "w1/var/cache/apt/archives/x_1_arm64.deb") == inode(n + "w2/var/cache/apt/archives/x_1_arm64.deb"));
    for (const char* own : {"var/lib/apt/lists/lock", "var/lib/apt/lists/partial/half", "var/cache/apt/archives/lock",
                            "var/cache/apt/pkgcache.bin"})
        CHECK(inode(n + "w1/" + own) != inode(n + "w2/" + own));
    CHECK(slurp(n + "w1/etc/fstab") == "proc /proc proc defaults 0 0\n");
    struct stat st {};
    REQUIRE(::lstat((n + "w1/usr/bin/tool").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    CHECK(st.st_nlink == 3); // the store's name and both nodes'
    CHECK(::lstat((n + "w1/boot/firmware").c_str(), &st) == 0);
    CHECK(::lstat((n + "w1/boot/firmware/start.elf").c_str(), &st) != 0);
    CHECK(slurp(out.path() + "/netboot/exports").find("/srv/nfs/w2  *(rw,") != std::string::npos);
    CHECK(slurp(out.path() + "/netboot/dnsmasq.conf").find("tftp-unique-root=mac\n") != std::string::npos);
}

TEST_CASE("netboot share: export mounts one /usr", "[netboot]") {
    netboot::Options o = opts();
    o.share = netboot::Share::Export;
    CHECK(netboot::usr_fstab_line(o) == "10.0.0.1:/srv/nfs/.usr /usr nfs ro,vers=3,tcp 0 0\n");
    CHECK(netboot::fstab_with_usr("proc /proc proc defaults 0 0\n/dev/sda2 /usr ext4 ro 0 2\n# x /usr\n", o) ==
          "proc /proc proc defaults 0 0\n# x /usr\n10.0.0.1:/srv/nfs/.usr /usr nfs ro,vers=3,tcp 0 0\n");
    CHECK(netboot::fstab_with_usr("", o) == "10.0.0.1:/srv/nfs/.usr /usr nfs ro,vers=3,tcp 0 0\n");
    std::string ex = netboot::exports(o, {{"w1", "", "", "", ""}});
    CHECK(ex.find("/srv/nfs/.usr  *(ro,sync,no_subtree_check,no_root_squash,fsid=") != std::string::npos);
    // The nodes keep the fsids they have without it.
    o.share = netboot::Share::Auto;
    std::string without = netboot::exports(o, {{"w1", "", "", "", ""}});
    CHECK(ex.find(without.substr(without.find("/srv/nfs/w1"))) != std::string::npos);

    auto make = [&](bool merged) {
        Tree tree;
        tree.put("/", mine(dir()));
        for (const char* d : {"/boot", "/boot/firmware", "/usr", "/usr/bin", "/usr/lib", "/etc", "/var"}) tree.put(d, mine(dir()));
        tree.put("/bin", merged ? mine(link("usr/bin")) : mine(dir()));
        tree.put("/boot/firmware/cmdline.txt", mine(file("root=/dev/mmcblk0p2 rootwait\n")));
        tree.put("/usr/bin/tool", mine(file("#!/bin/sh\n", 0755)));
        tree.put("/usr/bin/tool2", mine(file("#!/bin/sh\n", 0755)));
        tree.link("/usr/bin/tool-again", "/usr/bin/tool2");
        tree.put("/etc/fstab", mine(file("proc /proc proc defaults 0 0\n")));
        tree.put("/etc/hostname", mine(file("pi\n")));
        return tree;
    };
    NodeSpec n1 = node("w1", "b8:27:eb:00:00:01", ""), n2 = node("w2", "b8:27:eb:00:00:02", "");
    auto build = [&](const Tree& t1, const Tree& t2, const std::string& out) {
        Diagnostics diag;
        auto a = parse_netboot("netboot: {server: 10.0.0.1, share: export}", diag);
        auto b = parse_netboot("netboot: {server: 10.0.0.1, share: export}", diag);
        diag.checkpoint();
        Staging staging(out);
        OutputWriteEnv env;
        env.now = {1700000000, 0};
        env.identity = "r";
        env.threads = 2;
        env.node = &n1;
        a->write(t1, staging, env);
        env.node = &n2;
        b->write(t2, staging, env);
        a->finish(staging, {{a.get(), &n1}, {b.get(), &n2}}, env);
        staging.commit();
    };

    TempDir out;
    Tree tree = make(true);
    build(tree, tree, out.path());
    std::string n = out.path() + "/nfs/";
    CHECK(slurp(n + ".usr/bin/tool") == "#!/bin/sh\n");
    CHECK(inode(n + ".usr/bin/tool2") == inode(n + ".usr/bin/tool-again"));
    CHECK(std::filesystem::is_empty(n + "w1/usr"));
    CHECK(std::filesystem::is_empty(n + "w2/usr"));
    CHECK(slurp(n + "w2/etc/fstab") == "proc /proc proc defaults 0 0\n10.0.0.1:/srv/nfs/.usr /usr nfs ro,vers=3,tcp 0 0\n");
    CHECK(std::filesystem::exists(n + ".manifests/.usr"));
    CHECK(slurp(out.path() + "/netboot/exports").find("/srv/nfs/.usr  *(ro,") != std::string::npos);

    // Every node must have the same /usr; /usr alone cannot be mounted early without usrmerge.
    Tree other = tree.fork("w2");
    other.write_file("/usr/bin/tool", "#!/bin/bash\n", 0755);
    TempDir out2;
    CHECK_THROWS_WITH(build(tree, other, out2.path()),
                      "output 'netboot': share: export serves one /usr to every node, but node 'w2' and node 'w1' differ at "
                      "'/usr/bin/tool'; keep what differs per node outside /usr, or use share: auto");
    CHECK(std::filesystem::is_empty(out2.path()));
    Tree crossing = tree.fork("crossing");
    crossing.link("/etc/tool", "/usr/bin/tool");
    CHECK_THROWS_WITH(build(crossing, crossing, out2.path()),
                      "output 'netboot': share: export serves /usr apart from the root, but '/etc/tool' is a hardlink to "
                      "'/usr/bin/tool' across it; use share: auto");
    Tree split = make(false);
    CHECK_THROWS_WITH(build(split, split, out2.path()),
                      "output 'netboot': share: export mounts /usr alone, from the initramfs, which needs a merged /usr, but "
                      "'/bin' is a folder here, not a link into /usr (usrmerge); use share: auto");
}

TEST_CASE("netboot with prefix none refuses a second node", "[netboot]") {
    Tree tree;
    tree.put("/boot/firmware/cmdline.txt", file("root=/dev/mmcblk0p2\n"));
    tree.walk([](const std::string&, const Entry&) {});
    Diagnostics diag;
    auto a = parse_netboot("netboot: {server: 10.0.0.1, prefix: none}", diag);
    diag.checkpoint();
    if (::geteuid() != 0) return; // the tree is root's
    NodeSpec n1 = node("w1", "", ""), n2 = node("w2", "", "");
    TempDir out;
    Staging staging(out.path());
    OutputWriteEnv env;
    env.node = &n1;
    a->write(tree, staging, env);
    env.node = &n2;
    CHECK_THROWS_WITH(a->write(tree, staging, env),
                      "output 'netboot': prefix: none serves one node from the TFTP root itself, but nodes 'w1' and 'w2' "
                      "both boot from it; use prefix: mac or serial");
}

TEST_CASE("a FileStore shares an inode only between files whose content and metadata match", "[netboot]") {
    TempDir d;
    FileStore store(d.path() + "/.store");
    auto f = [](const std::string& data, uint32_t perm, int64_t mtime) {
        Entry e = Entry::file(make_blob(data), perm, {mtime, 0}, ::geteuid(), ::getegid());
        return e;
    };
    store.link(f("x", 0644, 1), d.path() + "/a");
    store.link(f("x", 0644, 1), d.path() + "/b"); // another content object, same bytes
    store.link(f("x", 0755, 1), d.path() + "/c");
    store.link(f("x", 0644, 2), d.path() + "/d");
    store.link(f("y", 0644, 1), d.path() + "/e");
    CHECK(inode(d.path() + "/a") == inode(d.path() + "/b"));
    CHECK(inode(d.path() + "/a") != inode(d.path() + "/c"));
    CHECK(inode(d.path() + "/a") != inode(d.path() + "/d"));
    CHECK(inode(d.path() + "/a") != inode(d.path() + "/e"));
    CHECK(store.files() == 4);
    struct stat st {};
    REQUIRE(::lstat((d.path() + "/c").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    CHECK(st.st_mtime == 1);
    CHECK(slurp(d.path() + "/e") == "y");
}

TEST_CASE("CopySources gives each copy its own inode and the same bytes", "[netboot]") {
    TempDir d;
    CopySources copies;
    Entry e = Entry::file(make_blob(std::string(100000, 'z')), 0600, {}, ::geteuid(), ::getegid());
    copies.write(d.path() + "/one", e);
    copies.write(d.path() + "/two", e); // a reflink where the filesystem offers one, else a copy
    copies.write(d.path() + "/three", e);
    CHECK(slurp(d.path() + "/two") == std::string(100000, 'z'));
    CHECK(slurp(d.path() + "/three") == std::string(100000, 'z'));
    CHECK(inode(d.path() + "/one") != inode(d.path() + "/two"));
}

TEST_CASE("netboot: a node without the field its TFTP folder is named by is a recipe error, at the node", "[netboot]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", R"(base: {dir: base}
nodes:
  - {name: w1, mac: "b8:27:eb:00:00:01", serial: a1b2c301}
  - {name: w2, serial: a1b2c302}
  - {name: w3, mac: "b8:27:eb:00:00:0g"}
outputs:
  - netboot: {server: 10.0.0.1}
)");
    d.write("s.yaml", R"(base: {dir: base}
nodes:
  - {name: w1, mac: "b8:27:eb:00:00:01"}
outputs:
  - netboot: {server: 10.0.0.1, prefix: serial}
)");
    std::string cwd = std::filesystem::current_path();
    std::filesystem::current_path(d.path());
    auto errors = [](const std::string& recipe) {
        try {
            make_plan(recipe, {});
        } catch (const Error& e) {
            CHECK(e.exit_code() == k_exit_usage);
            return std::string(e.what());
        }
        return std::string();
    };
    std::string r = errors("r.yaml"), s = errors("s.yaml");
    std::filesystem::current_path(cwd);
    CHECK(r == "r.yaml:4:5: output 'netboot': node 'w2' has no mac: its TFTP folder is named by it (prefix: mac); give the "
               "node a mac, or choose prefix: serial\n"
               "r.yaml:5:21: node 'w3': mac 'b8:27:eb:00:00:0g' contains 'g', not a hex digit");
    CHECK(s == "s.yaml:3:5: output 'netboot': node 'w1' has no serial: its TFTP folder is named by it (prefix: serial); give "
               "the node a serial, or choose prefix: mac");
}

TEST_CASE("netboot updates existing folders in place and keeps a node that left the recipe unless pruned", "[netboot]") {
    struct Quiet {
        Quiet() { log::set_level(log::Level::Quiet); }
        ~Quiet() { log::set_level(log::Level::Normal); }
    } quiet;
    Tree tree;
    tree.put("/", mine(dir()));
    for (const char* d : {"/boot", "/usr", "/usr/bin", "/etc", "/var", "/var/log"}) tree.put(d, mine(dir()));
    tree.put("/boot/start.elf", mine(file("elf")));
    tree.put("/boot/cmdline.txt", mine(file("console=tty1 root=/dev/mmcblk0p2\n")));
    tree.put("/usr/bin/tool", mine(file("#!/bin/sh\n", 0755)));
    tree.put("/etc/hostname", mine(file("pi\n")));

    NodeSpec n1 = node("w1", "b8:27:eb:00:00:01", ""), n2 = node("w2", "b8:27:eb:00:00:02", "");
    TempDir out;
    auto build = [&](const std::vector<const NodeSpec*>& nodes, const std::string& hostname_of_w2, bool prune) {
        Diagnostics diag;
        std::vector<std::unique_ptr<Output>> outs;
        for (size_t i = 0; i < nodes.size(); ++i) outs.push_back(parse_netboot("netboot: {server: 10.0.0.1}", diag));
        diag.checkpoint();
        Staging staging(out.path());
        OutputWriteEnv env;
        env.now = {1700000000, 0};
        env.identity = "r";
        env.prune = prune;
        NodeOutputs all;
        for (size_t i = 0; i < nodes.size(); ++i) {
            Tree t = tree.fork("node");
            t.write_file("/etc/hostname", nodes[i]->name == "w2" ? hostname_of_w2 : nodes[i]->name + "\n");
            env.node = nodes[i];
            outs[i]->write(t, staging, env);
            all.emplace_back(outs[i].get(), nodes[i]);
        }
        outs.front()->finish(staging, all, env);
        staging.commit();
    };
    std::string n = out.path() + "/nfs/";
    build({&n1, &n2}, "w2\n", false);
    std::ofstream(n + "w2/var/log/node.log") << "the node's\n";
    ino_t tool = inode(n + "w2/usr/bin/tool"), host1 = inode(n + "w1/etc/hostname"), start = inode(out.path() + "/tftp/b8-27-eb-00-00-02/start.elf");

    build({&n1, &n2}, "w2-renamed\n", false);
    CHECK(slurp(n + "w2/etc/hostname") == "w2-renamed\n");
    CHECK(inode(n + "w1/etc/hostname") == host1);
    CHECK(inode(n + "w2/usr/bin/tool") == tool);
    CHECK(inode(out.path() + "/tftp/b8-27-eb-00-00-02/start.elf") == start);
    CHECK(slurp(n + "w2/var/log/node.log") == "the node's\n");

    build({&n2}, "w2-renamed\n", false); // w1 left the recipe: kept, and no longer exported
    CHECK(slurp(n + "w1/etc/hostname") == "w1\n");
    CHECK(slurp(out.path() + "/tftp/b8-27-eb-00-00-01/start.elf") == "elf");
    CHECK(slurp(out.path() + "/netboot/exports").find("/srv/nfs/w1 ") == std::string::npos);
    build({&n2}, "w2-renamed\n", true);
    struct stat st {};
    CHECK(::lstat((n + "w1").c_str(), &st) != 0);
    CHECK(::lstat((out.path() + "/tftp/b8-27-eb-00-00-01").c_str(), &st) != 0);
    CHECK(::lstat((n + ".manifests/w1").c_str(), &st) != 0);
    CHECK(inode(n + "w2/usr/bin/tool") == tool);
}
