#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

const std::string k_pi_cmdline = "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 "
                                 "rootfstype=ext4 fsck.repair=yes rootwait quiet "
                                 "splash plymouth.ignore-serial-consoles cfg80211.ieee80211_regdom=GB\n";

Tree pi_boot(const std::string& cmdline = k_pi_cmdline) {
    Tree t;
    t.put("/etc/fstab",
          file("proc /proc proc defaults 0 0\nPARTUUID=6c586e13-01 /boot/firmware vfat defaults 0 2\n"));
    t.put("/boot/firmware/cmdline.txt", file(cmdline, 0755));
    return t;
}

std::string cmdline_of(const Tree& t) {
    return t.read_file("/boot/firmware/cmdline.txt");
}

} // namespace

TEST_CASE("cmdline: cgroups adds the four Kubernetes arguments once, at the end", "[step][cmdline]") {
    Tree t = pi_boot();
    run_step("cmdline: cgroups", t);
    CHECK(cmdline_of(t) ==
          "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 "
          "fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles "
          "cfg80211.ieee80211_regdom=GB cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1 "
          "swapaccount=1\n");
    const Entry* e = t.get("/boot/firmware/cmdline.txt");
    CHECK(e->perm == 0755); // the FAT partition's mode stays
    CHECK(e->mtime.sec == k_step_now.sec);
    // Idempotent, in both spellings.
    Tree once = t;
    run_step("cmdline: {cgroups: true}", t);
    CHECK(listing(t) == listing(once));
    CHECK(cmdline_of(t) == cmdline_of(once));
}

TEST_CASE("cmdline: cgroup_enable values are distinct arguments", "[step][cmdline]") {
    Tree t = pi_boot("root=/dev/mmcblk0p2 cgroup_enable=memory cgroup_memory=0 rootwait\n");
    run_step("cmdline: cgroups", t);
    // memory is kept where it was, cpuset added; the single-valued cgroup_memory is replaced in place.
    CHECK(cmdline_of(t) ==
          "root=/dev/mmcblk0p2 cgroup_enable=memory cgroup_memory=1 rootwait cgroup_enable=cpuset "
          "swapaccount=1\n");
}

TEST_CASE("cmdline: remove, set and add keep the order of the other arguments", "[step][cmdline]") {
    Tree t = pi_boot();
    const std::string yaml = "cmdline: {remove: [quiet, splash, console=tty1], set: {console: ttyAMA0}, "
                             "add: [net.ifnames=0, rootwait, fsck.repair=no]}";
    run_step(yaml, t);
    CHECK(cmdline_of(t) ==
          "console=ttyAMA0 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=no rootwait "
          "plymouth.ignore-serial-consoles cfg80211.ieee80211_regdom=GB net.ifnames=0\n");
    Tree once = t;
    run_step(yaml, t);
    CHECK(cmdline_of(t) == cmdline_of(once));
    CHECK(listing(t) == listing(once));
}

TEST_CASE("cmdline: a bare key removes every form of it; set replaces the first and drops the rest",
          "[step][cmdline]") {
    Tree t = pi_boot("a=1 quiet b quiet=2 a=3 console=tty1\n");
    run_step("cmdline: {remove: quiet}", t);
    CHECK(cmdline_of(t) == "a=1 b a=3 console=tty1\n");
    run_step("cmdline: {set: {a: 5}}", t);
    CHECK(cmdline_of(t) == "a=5 b console=tty1\n");
    run_step("cmdline: {add: [\"console=serial0,115200\", b]}", t); // console repeats: a second one is added
    CHECK(cmdline_of(t) == "a=5 b console=tty1 console=serial0,115200\n");
    run_step("cmdline: {remove: [console=tty1]}", t);
    CHECK(cmdline_of(t) == "a=5 b console=serial0,115200\n");
}

TEST_CASE("cmdline: the file becomes one line, and is left alone when nothing changes", "[step][cmdline]") {
    Tree t = pi_boot("root=/dev/sda2   rootwait\n\n"); // odd spacing, two newlines
    Entry* e = t.edit("/boot/firmware/cmdline.txt");
    e->mtime = {5, 0};
    run_step("cmdline: {add: [rootwait]}", t);
    CHECK(cmdline_of(t) == "root=/dev/sda2   rootwait\n\n");
    CHECK(t.get("/boot/firmware/cmdline.txt")->mtime.sec == 5);
    run_step("cmdline: {add: [quiet]}", t);
    CHECK(cmdline_of(t) == "root=/dev/sda2 rootwait quiet\n");
    Tree no_newline = pi_boot("root=/dev/sda2 init=\"/bin/sh -x\"");
    run_step("cmdline: {add: [quiet]}", no_newline);
    CHECK(cmdline_of(no_newline) == "root=/dev/sda2 init=\"/bin/sh -x\" quiet\n");
}

TEST_CASE("cmdline: the boot folder may be /boot, and cmdline.txt must exist", "[step][cmdline]") {
    Tree hypriot;
    hypriot.put("/boot/cmdline.txt", file("root=/dev/mmcblk0p2\n"));
    run_step("cmdline: {set: {root: /dev/sda2}}", hypriot);
    CHECK(hypriot.read_file("/boot/cmdline.txt") == "root=/dev/sda2\n");

    Tree no_cmdline;
    no_cmdline.put("/boot/firmware/config.txt", file("arm_64bit=1\n"));
    CHECK_THROWS_WITH(run_step("cmdline: cgroups", no_cmdline), "cmdline.txt is missing in /boot/firmware");
    CHECK_FALSE(no_cmdline.exists("/boot/firmware/cmdline.txt"));
    Tree not_a_pi;
    CHECK_THROWS_WITH(run_step("cmdline: cgroups", not_a_pi),
                      Catch::StartsWith("editing cmdline.txt needs a Raspberry Pi boot partition"));
}

TEST_CASE("cmdline: options are checked when the recipe is read", "[step][cmdline]") {
    CHECK(error_of("cmdline: cgroup") == "t.yaml:1:10: step 'cmdline': unknown shorthand 'cgroup' (did you "
                                         "mean 'cgroups'?); give 'cgroups' or a map "
                                         "of 'remove', 'set', 'add', 'cgroups'");
    CHECK(error_of("cmdline") ==
          "t.yaml:1:1: step 'cmdline': nothing to do; give 'cgroups' or a map of 'remove', "
          "'set', 'add', 'cgroups'");
    CHECK(error_of("cmdline: {remove: [root]}") == "t.yaml:1:20: step 'cmdline': refusing to remove 'root': "
                                                   "without root= the image does not boot (use 'set' "
                                                   "to change it)");
    CHECK(error_of("cmdline: {remove: root=/dev/sda2}") ==
          "t.yaml:1:19: step 'cmdline': refusing to remove 'root=/dev/sda2': without root= the image does "
          "not boot "
          "(use 'set' to change it)");
    CHECK(error_of("cmdline: {add: [\"quiet splash\", \"=x\", \"\"]}") ==
          "t.yaml:1:17: step 'cmdline': 'quiet splash' is not one argument; give each as its own item\n"
          "t.yaml:1:33: step 'cmdline': '=x' has no name before '='\n"
          "t.yaml:1:39: step 'cmdline': an argument is empty");
    CHECK(error_of("cmdline: {set: {cgroup_enable: memory, \"a b\": 1, quiet: \"\"}}") ==
          "t.yaml:1:17: step 'cmdline': 'cgroup_enable' may appear more than once; use add: "
          "[cgroup_enable=memory]\n"
          "t.yaml:1:40: step 'cmdline': 'a b' is not an argument name\n"
          "t.yaml:1:57: step 'cmdline': 'set' value of 'quiet' is empty");
    CHECK(error_of("cmdline: {remove: [quiet, console], add: [quiet, console=tty1]}") ==
          "t.yaml:1:43: step 'cmdline': 'quiet' is both removed and added\n"
          "t.yaml:1:50: step 'cmdline': 'console=tty1' is both removed and added");
    CHECK(error_of("cmdline: {set: {fsck.repair: yes}, add: [fsck.repair=no], cgroups: true, remove: "
                   "swapaccount}") ==
          "t.yaml:1:42: step 'cmdline': 'fsck.repair=no' gives 'fsck.repair' a second value (after "
          "'fsck.repair=yes')\n"
          "t.yaml:1:68: step 'cmdline': 'swapaccount=1' is both removed and added");
    CHECK(error_of("cmdline: {ad: [x]}") ==
          "t.yaml:1:11: step 'cmdline': unknown key 'ad' (did you mean 'add'?)");
    CHECK(describe_step("cmdline: {remove: quiet, set: {root: /dev/sda2}, cgroups: true}") ==
          "edit cmdline.txt: remove quiet; set root=/dev/sda2; add cgroup_enable=cpuset cgroup_enable=memory "
          "cgroup_memory=1 swapaccount=1");
}
