#include "core/units.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

// The systemd units that Debian's systemd-networkd and systemd-resolved packages ship, [Install] as
// in Debian 12, under the merged /usr.
Tree debian_systemd(bool with_resolved = true) {
    Tree t;
    t.put("/lib", link("usr/lib"));
    t.put("/usr/lib/systemd/system/systemd-networkd.service",
          file("[Unit]\nDescription=Network Configuration\n[Service]\nExecStart=!!/lib/systemd/systemd-networkd\n"
               "[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\n"
               "Alias=dbus-org.freedesktop.network1.service\nAlso=systemd-network-generator.service\n"
               "Also=systemd-networkd-wait-online.service\n"));
    t.put("/usr/lib/systemd/system/systemd-networkd.socket", file("[Socket]\n[Install]\nWantedBy=sockets.target\n"));
    t.put("/usr/lib/systemd/system/systemd-network-generator.service",
          file("[Service]\n[Install]\nWantedBy=sysinit.target\n"));
    t.put("/usr/lib/systemd/system/systemd-networkd-wait-online.service",
          file("[Service]\n[Install]\nWantedBy=network-online.target\n"));
    if (with_resolved)
        t.put("/usr/lib/systemd/system/systemd-resolved.service",
              file("[Service]\n[Install]\nWantedBy=multi-user.target\nAlias=dbus-org.freedesktop.resolve1.service\n"));
    t.put("/etc/resolv.conf", file("nameserver 192.168.1.1\n"));
    return t;
}

// Everything about every entry: two trees with the same snapshot are the same image.
std::string snapshot(const Tree& t) {
    std::string s;
    t.walk([&](const std::string& p, const Entry& e) {
        s += p + " " + std::string(type_name(e.type)) + " " + std::to_string(e.perm) + " " + std::to_string(e.uid) +
             ":" + std::to_string(e.gid) + " " + std::to_string(e.mtime.sec) + " " + e.link + "\n";
        if (e.type == FileType::Regular) s += read_all(e.content);
    });
    return s;
}

const std::string k_static = R"(networkd:
  interfaces:
    - name: eth0
      mac: B8-27-EB-12-34-56
      address: 10.0.0.11/24
      gateway: 10.0.0.1
      dns: [10.0.0.1, 1.1.1.1]
      domains: [cluster.lan, "~corp.example"]
  disable: [dhcpcd, networking, NetworkManager]
)";

} // namespace

TEST_CASE("networkd writes a static .network file and enables networkd and resolved", "[step][networkd]") {
    Tree t = debian_systemd();
    run_step(k_static, t);
    CHECK(t.read_file("/etc/systemd/network/10-eth0.network") ==
          "[Match]\nName=eth0\nMACAddress=b8:27:eb:12:34:56\n\n"
          "[Network]\nAddress=10.0.0.11/24\nGateway=10.0.0.1\nDNS=10.0.0.1\nDNS=1.1.1.1\n"
          "Domains=cluster.lan ~corp.example\n");
    const Entry* f = t.get("/etc/systemd/network/10-eth0.network");
    CHECK(f->perm == 0644);
    CHECK(f->uid == 0);
    CHECK(f->gid == 0);
    CHECK(f->mtime.sec == k_step_now.sec);
    CHECK(t.get("/etc/systemd/network")->perm == 0755);
    CHECK(units::is_enabled(t, "systemd-networkd.service"));
    CHECK(units::is_enabled(t, "systemd-networkd.socket"));
    CHECK(units::is_enabled(t, "systemd-resolved.service"));
    CHECK(t.get("/etc/systemd/system/dbus-org.freedesktop.resolve1.service")->link ==
          "/usr/lib/systemd/system/systemd-resolved.service");
    // The image's resolv.conf file is replaced by the link Debian's systemd-resolved package makes.
    REQUIRE(t.get("/etc/resolv.conf")->type == FileType::Symlink);
    CHECK(t.get("/etc/resolv.conf")->link == "../run/systemd/resolve/stub-resolv.conf");

    Tree once = t;
    run_step(k_static, t);
    CHECK(snapshot(t) == snapshot(once));
}

TEST_CASE("networkd defaults: DHCP without an address, file named by index and name", "[step][networkd]") {
    Tree t = debian_systemd();
    run_step("networkd: {interfaces: [{name: eth0}, {name: 'en*'}, {mac: 'b8:27:eb:00:00:01'}, "
             "{name: wlan0, address: 192.168.7.2/30, dhcp: true, file: 50-wifi.network}]}",
             t);
    CHECK(t.read_file("/etc/systemd/network/10-eth0.network") == "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n");
    CHECK(t.read_file("/etc/systemd/network/11-en.network") == "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n");
    CHECK(t.read_file("/etc/systemd/network/12-b827eb000001.network") ==
          "[Match]\nMACAddress=b8:27:eb:00:00:01\n\n[Network]\nDHCP=ipv4\n");
    CHECK(t.read_file("/etc/systemd/network/50-wifi.network") ==
          "[Match]\nName=wlan0\n\n[Network]\nDHCP=ipv4\nAddress=192.168.7.2/30\n");
    CHECK(t.children("/etc/systemd/network").size() == 4);
    CHECK(describe_step("networkd: {interfaces: [{name: eth0}, {name: eth1, address: 10.1.0.5/16, gateway: 10.1.255.254}], "
                        "disable: [dhcpcd]}") ==
          "write /etc/systemd/network/10-eth0.network (dhcp), /etc/systemd/network/11-eth1.network (10.1.0.5/16 via "
          "10.1.255.254); enable systemd-networkd, systemd-resolved; cloud-init's network configuration off "
          "where installed; mask dhcpcd");
    CHECK(describe_step("networkd: {interfaces: [{name: eth0}], resolved: false, cloud_init_network: true}") ==
          "write /etc/systemd/network/10-eth0.network (dhcp); enable systemd-networkd");
}

TEST_CASE("networkd switches cloud-init's network configuration off where cloud-init is", "[step][networkd]") {
    const std::string off = "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg";
    Tree t = debian_systemd();
    t.put("/etc/cloud/cloud.cfg", file("datasource_list: [NoCloud, None]\n"));
    run_step(k_static, t);
    CHECK(t.read_file(off) == "# Written by imgbuild's networkd step: /etc/systemd/network configures this machine's "
                              "network,\n# so cloud-init writes none of its own (its fallback DHCP file would win "
                              "over the step's files).\nnetwork:\n  config: disabled\n");
    CHECK(t.get(off)->perm == 0644);
    CHECK(t.get(off)->uid == 0);
    CHECK(t.get(off)->mtime.sec == k_step_now.sec);
    CHECK(t.get("/etc/cloud/cloud.cfg.d")->perm == 0755);
    Tree once = t;
    run_step(k_static, t);
    CHECK(snapshot(t) == snapshot(once));

    // Found by its program too, when the image has no /etc/cloud yet.
    Tree by_program = debian_systemd();
    by_program.put("/usr/bin/cloud-init", file("#!/usr/bin/python3\n", 0755));
    run_step(k_static, by_program);
    CHECK(by_program.exists(off));

    // Asked to keep it: nothing written.
    Tree kept = debian_systemd();
    kept.put("/etc/cloud/cloud.cfg", file("datasource_list: [NoCloud, None]\n"));
    run_step("networkd: {interfaces: [{name: eth0}], cloud_init_network: true}", kept);
    CHECK_FALSE(kept.exists("/etc/cloud/cloud.cfg.d"));

    // No cloud-init: no /etc/cloud, which step cloud_init would take for an installed cloud-init.
    Tree none = debian_systemd();
    run_step(k_static, none);
    CHECK_FALSE(none.exists("/etc/cloud"));
}

TEST_CASE("networkd masks the other network managers the image has", "[step][networkd]") {
    Tree t = debian_systemd();
    t.put("/usr/lib/systemd/system/dhcpcd.service", file("[Service]\n[Install]\nWantedBy=multi-user.target\n"));
    t.put("/usr/lib/systemd/system/NetworkManager.service", file("[Service]\n[Install]\nWantedBy=multi-user.target\n"));
    t.put("/usr/lib/systemd/system/NetworkManager-wait-online.service",
          file("[Service]\n[Install]\nWantedBy=network-online.target\n"));
    units::enable(t, "dhcpcd.service");
    units::enable(t, "NetworkManager.service");
    run_step(k_static, t);
    for (const char* unit : {"dhcpcd.service", "NetworkManager.service", "NetworkManager-wait-online.service"}) {
        INFO(unit);
        REQUIRE(t.get(std::string("/etc/systemd/system/") + unit));
        CHECK(t.get(std::string("/etc/systemd/system/") + unit)->link == "/dev/null");
        CHECK_FALSE(units::is_enabled(t, unit));
    }
    // networking.service is not in this image: nothing is masked for it.
    CHECK_FALSE(t.exists("/etc/systemd/system/networking.service"));
    CHECK_FALSE(t.exists("/etc/systemd/system/ifupdown-wait-online.service"));
    Tree once = t;
    run_step(k_static, t);
    CHECK(snapshot(t) == snapshot(once));
}

TEST_CASE("networkd with resolved: false leaves resolved and resolv.conf alone", "[step][networkd]") {
    Tree t = debian_systemd(false);
    run_step("networkd: {interfaces: [{name: eth0}], resolved: false}", t);
    CHECK(units::is_enabled(t, "systemd-networkd.service"));
    CHECK(t.read_file("/etc/resolv.conf") == "nameserver 192.168.1.1\n");
    CHECK(t.get("/etc/resolv.conf")->type == FileType::Regular);
}

TEST_CASE("networkd fails on images without networkd or resolved, before any edit", "[step][networkd]") {
    Tree bare;
    bare.put("/etc/resolv.conf", file("nameserver 192.168.1.1\n"));
    std::string before = snapshot(bare);
    CHECK_THROWS_WITH(run_step("networkd: {interfaces: [{name: eth0}]}", bare),
                      "the image has no systemd-networkd (no systemd-networkd.service unit); install the "
                      "systemd-networkd package in the base");
    CHECK(snapshot(bare) == before);
    Tree no_resolved = debian_systemd(false);
    before = snapshot(no_resolved);
    CHECK_THROWS_WITH(run_step("networkd: {interfaces: [{name: eth0}]}", no_resolved),
                      "the image has no systemd-resolved (no systemd-resolved.service unit); install the "
                      "systemd-resolved package in the base, or set 'resolved: false'");
    CHECK(snapshot(no_resolved) == before);
}

TEST_CASE("networkd validates addresses, with the offending value's place", "[step][networkd]") {
    CHECK(error_of("networkd:\n"
                   "  interfaces:\n"
                   "    - {name: eth0, address: 10.0.0.300/24}\n"
                   "    - {name: eth1, address: 10.0.0.11}\n"
                   "    - {name: eth2, address: 10.0.0.11/33}\n"
                   "    - {name: eth3, address: 10.0.0.11/24, gateway: 10.0.1.1}\n"
                   "    - {name: eth4, address: 10.0.0.11/24, gateway: 10.0.0.1/24, dns: [1.1.1, 8.8.8.8]}\n"
                   "    - {name: eth5, address: 10.0.0.0/24}\n"
                   "    - {name: eth6, address: 10.0.0.255/24, dns: 10.0.0.x}\n"
                   "    - {name: eth7, gateway: 10.0.0.1}\n"
                   "    - {name: eth8, address: 10.0.0.1/24, gateway: 10.0.0.1}\n") ==
          "t.yaml:3:29: step 'networkd': address '10.0.0.300/24' is not an IPv4 address\n"
          "t.yaml:4:29: step 'networkd': address '10.0.0.11' needs a /prefix, such as 10.0.0.11/24\n"
          "t.yaml:5:29: step 'networkd': address '10.0.0.11/33' has prefix '/33', not 0..32\n"
          "t.yaml:6:52: step 'networkd': gateway '10.0.1.1' is not inside 10.0.0.0/24, the subnet of address "
          "'10.0.0.11/24'\n"
          "t.yaml:7:52: step 'networkd': gateway '10.0.0.1/24' must be an address without a /prefix\n"
          "t.yaml:7:71: step 'networkd': dns '1.1.1' is not an IPv4 address\n"
          "t.yaml:8:29: step 'networkd': address '10.0.0.0/24' is the subnet's own network address\n"
          "t.yaml:9:29: step 'networkd': address '10.0.0.255/24' is the subnet's broadcast address\n"
          "t.yaml:9:49: step 'networkd': dns '10.0.0.x' is not an IPv4 address\n"
          "t.yaml:10:29: step 'networkd': gateway '10.0.0.1' needs 'address' (a gateway is reached through the "
          "address's subnet)\n"
          "t.yaml:11:51: step 'networkd': gateway '10.0.0.1' is the interface's own address");
    // A /16 reaches further than its third octet.
    CHECK(error_of("networkd: {interfaces: [{name: eth0, address: 10.1.0.5/16, gateway: 10.1.255.254}]}") == "");
}

TEST_CASE("networkd validates matches, names, files and managers", "[step][networkd]") {
    CHECK(error_of("networkd:\n"
                   "  interfaces:\n"
                   "    - {name: a-very-long-name0}\n"
                   "    - {name: 'eth/0', mac: '00:11:22:33:44'}\n"
                   "    - {dhcp: false}\n"
                   "    - {name: 'eth 1', file: eth1.conf, domains: [Cluster.LAN]}\n"
                   "    - {name: eth2, file: 11-eth0.network, adress: 10.0.0.1/24}\n"
                   "    - eth3\n"
                   "  disable: [dhcpcd, networkmanager, wicd]\n") ==
          "t.yaml:3:14: step 'networkd': interface name 'a-very-long-name0' is longer than 15 characters\n"
          "t.yaml:4:14: step 'networkd': interface name 'eth/0' contains '/'\n"
          "t.yaml:4:28: step 'networkd': mac '00:11:22:33:44' is not six hex pairs like b8:27:eb:12:34:56\n"
          "t.yaml:5:7: step 'networkd': an interface needs 'name' or 'mac' (or both) to match it\n"
          "t.yaml:5:14: step 'networkd': interface has 'dhcp: false' and no address; give 'address' or drop 'dhcp'\n"
          "t.yaml:6:14: step 'networkd': interface name 'eth 1' contains whitespace\n"
          "t.yaml:6:29: step 'networkd': file 'eth1.conf' must be a plain file name ending in '.network'\n"
          "t.yaml:6:50: step 'networkd': domain 'Cluster.LAN' is not a valid domain: it contains 'C' (only a-z, "
          "0-9, '-' and '.' are allowed)\n"
          "t.yaml:7:26: step 'networkd': file '11-eth0.network' is already written for another interface\n"
          "t.yaml:7:43: step 'networkd': unknown key 'adress' (did you mean 'address'?)\n"
          "t.yaml:8:7: step 'networkd': expected a map of options, found a string\n"
          "t.yaml:9:21: step 'networkd': 'disable' takes dhcpcd, networking or NetworkManager, not 'networkmanager' "
          "(did you mean 'NetworkManager'?)\n"
          "t.yaml:9:37: step 'networkd': 'disable' takes dhcpcd, networking or NetworkManager, not 'wicd'");
    CHECK(error_of("networkd: {interfaces: []}") == "t.yaml:1:24: step 'networkd': 'interfaces' needs at least one interface");
    CHECK(error_of("networkd: {resolved: maybe}") ==
          "t.yaml:1:11: step 'networkd': missing required key 'interfaces'\n"
          "t.yaml:1:22: step 'networkd': 'resolved' must be true or false, found 'maybe'");
    CHECK(error_of("networkd: {interfaces: [{name: eth0}], cloud_init_network: maybe}") ==
          "t.yaml:1:60: step 'networkd': 'cloud_init_network' must be true or false, found 'maybe'");
}
