#include "core/units.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

Tree raspios() {
    Tree t;
    t.put("/etc/fstab", file("proc            /proc           proc    defaults          0       0\n"
                             "PARTUUID=6c586e13-01  /boot/firmware  vfat    defaults          0       2\n"
                             "PARTUUID=6c586e13-02  /               ext4    defaults,noatime  0       1\n"
                             "/swapfile none swap sw 0 0\n"
                             "#/dev/sda3 none swap sw 0 0\n"));
    t.put("/lib/systemd/system/dphys-swapfile.service",
          file("[Unit]\nDescription=dphys-swapfile\n[Service]\nType=oneshot\n[Install]\nWantedBy=multi-user."
               "target\n"));
    t.put("/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service",
          link("/lib/systemd/system/dphys-swapfile.service"));
    t.put("/var/swap", file(std::string(4096, '\0'), 0600));
    return t;
}

} // namespace

TEST_CASE("kubernetes_prereqs: modules, sysctls and swap off with no options", "[step][kubernetes_prereqs]") {
    for (const char* yaml : {"kubernetes_prereqs", "kubernetes_prereqs: {}"}) {
        Tree t = raspios();
        run_step(yaml, t);
        CHECK(t.read_file("/etc/modules-load.d/k8s.conf") == "overlay\nbr_netfilter\n");
        CHECK(t.read_file("/etc/sysctl.d/k8s.conf") == "net.bridge.bridge-nf-call-iptables = 1\n"
                                                       "net.bridge.bridge-nf-call-ip6tables = 1\n"
                                                       "net.ipv4.ip_forward = 1\n");
        const Entry* conf = t.get("/etc/sysctl.d/k8s.conf");
        CHECK(conf->perm == 0644);
        CHECK(conf->uid == 0);
        CHECK(conf->mtime.sec == k_step_now.sec);
        CHECK(t.get("/etc/modules-load.d")->perm == 0755);
        CHECK(units::is_masked(t, "dphys-swapfile.service"));
        CHECK_FALSE(units::is_enabled(t, "dphys-swapfile.service"));
        CHECK_FALSE(t.exists("/var/swap"));
        CHECK(t.read_file("/etc/fstab") ==
              "proc            /proc           proc    defaults          0       0\n"
              "PARTUUID=6c586e13-01  /boot/firmware  vfat    defaults          0       2\n"
              "PARTUUID=6c586e13-02  /               ext4    defaults,noatime  0       1\n"
              "# disabled by imgbuild: /swapfile none swap sw 0 0\n"
              "#/dev/sda3 none swap sw 0 0\n");
        Tree once = t;
        run_step(yaml, t);
        CHECK(listing(t) == listing(once));
        CHECK(t.read_file("/etc/fstab") == once.read_file("/etc/fstab"));
    }
}

TEST_CASE("kubernetes_prereqs: extra modules and sysctls; swap kept", "[step][kubernetes_prereqs]") {
    Tree t = raspios();
    run_step("kubernetes_prereqs: {modules: [ip_vs, overlay, nf_conntrack], swap: keep, "
             "sysctl: {net.ipv4.ip_forward: 0, vm.overcommit_memory: 1, kernel/panic: 10}}",
             t);
    CHECK(t.read_file("/etc/modules-load.d/k8s.conf") == "overlay\nbr_netfilter\nip_vs\nnf_conntrack\n");
    CHECK(t.read_file("/etc/sysctl.d/k8s.conf") == "net.bridge.bridge-nf-call-iptables = 1\n"
                                                   "net.bridge.bridge-nf-call-ip6tables = 1\n"
                                                   "net.ipv4.ip_forward = 0\n"
                                                   "vm.overcommit_memory = 1\n"
                                                   "kernel/panic = 10\n");
    CHECK(units::is_enabled(t, "dphys-swapfile.service"));
    CHECK(t.exists("/var/swap"));
    CHECK(t.read_file("/etc/fstab") == raspios().read_file("/etc/fstab"));
}

TEST_CASE("kubernetes_prereqs: a Debian image without dphys-swapfile or fstab",
          "[step][kubernetes_prereqs]") {
    Tree t;
    t.put("/etc/sysctl.d/k8s.conf", file("old\n", 0600)); // the step owns this file: replaced, mode kept
    run_step("kubernetes_prereqs: {swap: off}", t);
    CHECK(t.read_file("/etc/sysctl.d/k8s.conf").starts_with("net.bridge.bridge-nf-call-iptables = 1\n"));
    CHECK(t.get("/etc/sysctl.d/k8s.conf")->perm == 0600);
    CHECK(t.get("/etc/systemd/system/dphys-swapfile.service")->link == "/dev/null");
    CHECK_FALSE(t.exists("/etc/fstab"));
}

TEST_CASE("kubernetes_prereqs: options are checked when the recipe is read", "[step][kubernetes_prereqs]") {
    CHECK(
        error_of("kubernetes_prereqs: {modules: [\"br netfilter\"], swap: no, sysctl: {ip_forward: 1, "
                 "net.core.somaxconn: {a: 1}}}") ==
        "t.yaml:1:32: step 'kubernetes_prereqs': 'br netfilter' is not a kernel module name\n"
        "t.yaml:1:55: step 'kubernetes_prereqs': 'swap' is 'off' or 'keep', found 'no'\n"
        "t.yaml:1:68: step 'kubernetes_prereqs': 'ip_forward' is not a sysctl key such as "
        "'net.ipv4.ip_forward'\n"
        "t.yaml:1:103: step 'kubernetes_prereqs': sysctl 'net.core.somaxconn' must be a string, found a map");
    CHECK(error_of("kubernetes_prereqs: yes") ==
          "t.yaml:1:21: step 'kubernetes_prereqs': expected a map of options, found a string");
    CHECK(error_of("kubernetes_prereqs: {module: [x]}") ==
          "t.yaml:1:22: step 'kubernetes_prereqs': unknown key 'module' (did you mean 'modules'?)");
    CHECK(
        describe_step("kubernetes_prereqs: {swap: keep}") ==
        "kubernetes prerequisites: modules overlay br_netfilter; sysctl net.bridge.bridge-nf-call-iptables=1 "
        "net.bridge.bridge-nf-call-ip6tables=1 net.ipv4.ip_forward=1; swap kept");
}
