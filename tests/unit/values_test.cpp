// Recipe values that land in files imgbuild writes: each field is checked for its grammar when the
// recipe is read, so that no value can add a line (or cut one short) in a generated file.
#include "core/build.hpp"
#include "core/disk.hpp"
#include "core/error.hpp"
#include "core/fat.hpp"
#include "core/fat_write.hpp"
#include "core/validate.hpp"
#include "core/writer_support.hpp"
#include "ext/archive.hpp"
#include "ext/ext2fs.hpp"
#include "ext/ext4_write.hpp"
#include "helpers.hpp"
#include "outputs/netboot.hpp"
#include "plan_errors.hpp"
#include "sources/source.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;
using Catch::Matchers::Contains;

namespace {

// Values that would add a line, end one early, or be misread inside one, as YAML double-quoted text.
struct Hostile {
    const char* yaml; // inside "..."
    const char* what;
};
const Hostile k_breaks[] = {
    {"x\\ndhcp-boot=evil.0", "a line break"},
    {"x\\revil", "a carriage return"},
    {"x\\0evil", "a NUL byte"},
    {"x\\x1bevil", "an escape character"},
};
const Hostile k_quoting[] = {
    {"x\\\"evil", "a double quote"},
    {"x#evil", "a comment character"},
    {"x evil", "a blank"},
};

// `tmpl` with every "@" replaced by `value` (YAML double-quoted text, without the quotes).
std::string with(std::string tmpl, const std::string& value) {
    std::string out;
    for (char c : tmpl)
        out += c == '@' ? "\"" + value + "\"" : std::string(1, c);
    return out;
}

// Every hostile value in `list` must be an error of the step `tmpl` (a step's YAML with "@").
void refuses_all(const std::string& tmpl, const Hostile* list, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        INFO(tmpl << " with " << list[i].what);
        CHECK(error_of(with(tmpl, list[i].yaml)) != "");
    }
}
template <size_t N> void refuses(const std::string& tmpl, const Hostile (&list)[N]) {
    refuses_all(tmpl, list, N);
}

// A netboot recipe with `node` as its one node and `netboot` as the output's extra options.
std::string netboot_recipe(const std::string& node, const std::string& netboot, const std::string& top = "") {
    return top + "base: {dir: base}\nnodes:\n  - " + node + "\noutputs:\n  - netboot: {server: 10.0.0.1" +
           netboot + "}\n";
}

} // namespace

TEST_CASE("one_line refuses what would end a line or be cut at, and invalid UTF-8", "[values]") {
    CHECK_FALSE(validate::one_line("plain text: with 'quotes' # and ; comments"));
    CHECK_FALSE(validate::one_line("grüße 日本"));
    CHECK(*validate::one_line(std::string("a\nb")) == "contains a line break");
    CHECK(*validate::one_line(std::string("a\rb")) == "contains a line break");
    CHECK(*validate::one_line(std::string("a\0b", 3)) == "contains a NUL byte");
    CHECK(*validate::one_line(std::string("a\x1b[2Jb")) == "contains the control character 0x1B");
    CHECK(*validate::one_line(std::string("a\x7f")) == "contains the control character 0x7F");
    CHECK(*validate::one_line("a\tb") == "contains the control character 0x09");
    CHECK_FALSE(validate::one_line("a\tb", true));
    CHECK(*validate::one_line("caf\xe9") == "is not valid UTF-8");
    CHECK(*validate::one_line("\xc0\xaf") == "is not valid UTF-8");         // overlong '/'
    CHECK(*validate::one_line("\xed\xa0\x80") == "is not valid UTF-8");     // a surrogate
    CHECK(*validate::one_line("\xf4\x90\x80\x80") == "is not valid UTF-8"); // past U+10FFFF
    CHECK(*validate::one_line("\xe6\x97") == "is not valid UTF-8");         // cut short
    CHECK(*validate::one_line_without("a,b", ",") == "contains ','");
    CHECK(*validate::one_line_without("a b", " ") == "contains a blank");
    CHECK(validate::shown(std::string("a\nb\0c", 5)) == "a\\nb\\x00c");
    CHECK(validate::shown("caf\xe9") == "caf\\xe9");
}

TEST_CASE("IPv4 addresses are strict dotted quads", "[values]") {
    for (const char* good : {"10.0.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.1/0", "10.0.0.1/32"})
        CHECK_FALSE(validate::ipv4(good, true));
    for (const char* bad : {"10.0.0.-5", "-10.0.0.1", "10.0.0.256", "10.0.0", "10.0.0.1.2", "10.0.0.+1",
                            "10.0.0.01", "10.0..1", " 10.0.0.1", "10.0.0.1 ", "10.0.0.1/33", "10.0.0.1/-1",
                            "10.0.0.1/", "10.0.0.1/+8", "10.0.0.1/08", "1e1.0.0.1", "0x0a.0.0.1"}) {
        INFO(bad);
        CHECK(validate::ipv4(bad, true));
    }
    CHECK(validate::ipv4("10.0.0.1/24", false));
}

TEST_CASE("owners are ids 0..4294967294 or names an /etc/passwd may hold", "[values]") {
    for (const char* good :
         {"0", "1000", "4294967294", "pi", "Debian-exim", "_apt", "systemd-network", "user.name", "machine$"})
        CHECK_FALSE(validate::owner(good));
    for (const char* bad :
         {"", "-1", "4294967295", "99999999999", "1x", "-root", "a b", "a:b", "a\nb", "ro$ot", "ü"}) {
        INFO(bad);
        CHECK(validate::owner(bad));
    }
    CHECK(*validate::owner("4294967295") ==
          "is out of range: ids are 0..4294967294 (4294967295 is chown's 'no change', not an id)");
}

TEST_CASE("recipe variables have identifier names, in vars: and --set alike", "[values]") {
    CHECK_FALSE(validate::var_name("domain"));
    CHECK_FALSE(validate::var_name("_x-1"));
    for (const char* bad : {"", "{{d}}", "1x", "a.b", "a b", "-a"})
        CHECK(validate::var_name(bad));
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml",
            "base: {dir: base}\nvars:\n  \"{{d}}\": 1\n  ok: 2\noutputs:\n  - tar: {path: r.tar}\n");
    CHECK(errors_of(d, "r.yaml") ==
          "r.yaml:3:3: vars: '{{d}}' is not a variable name: it must start with a letter or '_'");
}

TEST_CASE("epochs every output can store; later ones are refused", "[values]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    auto recipe = [&](const std::string& epoch) {
        d.write("r.yaml", "base: {dir: base}\nepoch: " + epoch + "\noutputs:\n  - tar: {path: r.tar}\n");
        return errors_of(d, "r.yaml");
    };
    CHECK(recipe("0") == "");
    CHECK(recipe("4294967295") == "");
    CHECK(recipe("4294967296") == "r.yaml:2:8: recipe: epoch 4294967296 is after 4294967295 (2106-02-07), "
                                  "the latest time every output can store");
    CHECK(recipe("9223372036854775807") != "");
    CHECK(recipe("-1") != "");
    CHECK(recipe("99999999999999999999999") != "");
}

TEST_CASE("dnsmasq.conf, exports and nodes.txt: no node field or netboot option adds a line",
          "[values][netboot]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    auto errors = [&](const std::string& recipe) {
        d.write("r.yaml", recipe);
        return errors_of(d, "r.yaml");
    };
    REQUIRE(errors(netboot_recipe(
                "{name: w1, mac: \"b8:27:eb:00:00:01\", serial: a1b2c3d4, ip: 10.0.0.11/24}", "")) == "");
    // The injection of the issue: a node name that is three lines of dnsmasq configuration.
    CHECK_THAT(
        errors(netboot_recipe(
            "{name: \"x\\ndhcp-boot=evil.0,evilhost,127.0.0.1\\nport=53\\n#\", mac: \"b8:27:eb:00:00:01\"}",
            "")),
        Contains("name 'x\\ndhcp-boot=evil.0,evilhost,127.0.0.1\\nport=53\\n#' contains a blank, control or "
                 "non-ASCII character"));
    CHECK_THAT(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\", ip: 10.0.0.-5/24}", "")),
               Contains("ip '10.0.0.-5/24' is not an IPv4 address"));
    d.write("r.yaml", "base: {dir: base}\nnodes: [{name: w1, mac: \"b8:27:eb:00:00:01\"}]\noutputs:\n  - "
                      "netboot: {server: \"-10.0.0.1\"}\n");
    CHECK_THAT(errors_of(d, "r.yaml"), Contains("server '-10.0.0.1' is not an IPv4 address"));
    {
        for (const auto& h : k_breaks) {
            INFO(h.what);
            std::string v = std::string("\"") + h.yaml + "\"";
            for (std::string field : {"name", "mac", "serial", "ip"}) {
                std::string node = "{name: w1, mac: \"b8:27:eb:00:00:01\", " + field + ": " + v + "}";
                if (field == "name" || field == "mac")
                    node = "{" + field + ": " + v +
                           (field == "name" ? ", mac: \"b8:27:eb:00:00:01\"}" : ", name: w1}");
                INFO(field);
                CHECK(errors(netboot_recipe(node, "")) != "");
            }
            for (std::string option :
                 {"subnet", "tftp_root", "nfs_root", "server_config", "export_base", "tftp_server_path"}) {
                INFO(option);
                CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}",
                                            ", " + option + ": " + v)) != "");
            }
            INFO("server");
            d.write("r.yaml", "base: {dir: base}\nnodes: [{name: w1, mac: "
                              "\"b8:27:eb:00:00:01\"}]\noutputs:\n  - netboot: {server: " +
                                  v + "}\n");
            CHECK(errors_of(d, "r.yaml") != "");
            INFO("recipe name");
            CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}", "", "name: " + v + "\n")) !=
                  "");
        }
    }
    // Blanks, quotes, '#', ',' and '\' split or end a path in exports, dnsmasq.conf (tftp-root=PATH,IFACE),
    // fstab and nfsroot=SERVER:PATH,OPTIONS.
    for (const char* bad :
         {"/srv/a b", "/srv/a,b", "/srv/a#b", "/srv/a\\\"b", "/srv/a\\\\b", "/srv/a'b", "/srv/a\\tb"}) {
        INFO(bad);
        CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}",
                                    std::string(", export_base: \"") + bad + "\"")) != "");
        CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}",
                                    std::string(", tftp_server_path: \"") + bad + "\"")) != "");
    }
    for (const char* bad : {"a b", "a,b", "a#b", "a\\\"b"}) {
        INFO(bad);
        CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}",
                                    std::string(", tftp_root: \"") + bad + "\"")) != "");
    }
    // The recipe's name only lands in a comment line: quotes and comment characters are fine there.
    netboot::Options o;
    o.server = "10.0.0.1";
    o.subnet = "10.0.0.0";
    o.netmask = "255.255.255.0";
    std::string plain = netboot::dnsmasq_conf(o, "r");
    std::string odd = netboot::dnsmasq_conf(o, "r \"#; x");
    CHECK(std::count(odd.begin(), odd.end(), '\n') == std::count(plain.begin(), plain.end(), '\n'));
    CHECK(errors(netboot_recipe("{name: w1, mac: \"b8:27:eb:00:00:01\"}", "", "name: \"r \\\"#; x\"\n")) ==
          "");
}

TEST_CASE("/etc/hostname and /etc/hosts: host names and domains are RFC 1123", "[values][hostname]") {
    refuses("hostname: @", k_breaks);
    refuses("hostname: @", k_quoting);
    refuses("hostname: {name: w1, domain: @}", k_breaks);
    refuses("hostname: {name: w1, domain: @}", k_quoting);
}

TEST_CASE(".network files: every interface field", "[values][networkd]") {
    for (std::string tmpl : {"networkd: {interfaces: [{name: @}]}", "networkd: {interfaces: [{mac: @}]}",
                             "networkd: {interfaces: [{name: eth0, address: @}]}",
                             "networkd: {interfaces: [{name: eth0, address: 10.0.0.2/24, gateway: @}]}",
                             "networkd: {interfaces: [{name: eth0, dns: [@]}]}",
                             "networkd: {interfaces: [{name: eth0, domains: [@]}]}",
                             "networkd: {interfaces: [{name: eth0, file: @}]}",
                             "networkd: {interfaces: [{name: eth0}], disable: [@]}"}) {
        refuses(tmpl, k_breaks);
    }
    for (std::string tmpl : {"networkd: {interfaces: [{name: eth0, domains: [@]}]}",
                             "networkd: {interfaces: [{name: eth0, dns: [@]}]}"}) {
        refuses(tmpl, k_quoting);
    }
    // Name= is a blank-separated list of globs that reads quotes and '\'; '#' only starts a comment at
    // the start of a line.
    CHECK(error_of("networkd: {interfaces: [{name: \"eth0 wlan0\"}]}") != "");
    CHECK(error_of("networkd: {interfaces: [{name: \"eth0\\\"\"}]}") != "");
    CHECK(error_of("networkd: {interfaces: [{name: \"eth#0\"}]}") == "");
    CHECK_THAT(error_of("networkd: {interfaces: [{name: eth0, address: 10.0.0.-5/24}]}"),
               Contains("is not an IPv4 address"));
    CHECK_THAT(error_of("networkd: {interfaces: [{name: \"eth\\\\0\"}]}"), Contains("contains '\\'"));
}

TEST_CASE("authorized_keys: one key a line, the whole item checked", "[values][ssh]") {
    const std::string key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+gHceS3PH/eo2km8HMbGf+E6P0qRcPhus0L8MbkJid me";
    CHECK(error_of("ssh: {authorized_keys: {pi: [\"" + key + "\"]}}") == "");
    // The issue's case: a valid first line, then a private key's first line.
    CHECK_THAT(error_of("ssh: {authorized_keys: {pi: [\"" + key +
                        "\\n-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn\"]}}"),
               Contains("has a line break: give each key as its own item"));
    for (const Hostile& h : k_breaks) {
        INFO(h.what);
        CHECK(error_of("ssh: {authorized_keys: {pi: [\"" + key + h.yaml + "\"]}}") != "");
        CHECK(error_of("ssh: {authorized_keys: {pi: [\"" + std::string(h.yaml) + " " + key + "\"]}}") != "");
    }
    // A YAML block scalar's final line break is not a second line.
    CHECK(error_of("ssh:\n  authorized_keys:\n    pi:\n      - |\n        " + key + "\n") == "");
    // A key file: a NUL inside a line is refused too.
    TempDir d;
    std::string file = d.write("keys.pub", key + std::string("\0\nssh-rsa x\n", 12));
    CHECK(error_of("ssh: {key_files: {pi: " + file + "}}") != "");
    // Options with a quote left open would swallow the line.
    CHECK(error_of("ssh: {authorized_keys: {pi: [\"command=\\\"x " + key + "\"]}}") != "");
    refuses("ssh: {authorized_keys: {@: [\"" + key + "\"]}}", k_breaks);
}

TEST_CASE("sshd_config: permit_root_login takes its words only", "[values][ssh]") {
    refuses("ssh: {permit_root_login: @}", k_breaks);
    refuses("ssh: {permit_root_login: @}", k_quoting);
    refuses("ssh: {host_keys: @}", k_breaks);
}

TEST_CASE("cmdline.txt: every argument is one argument on the one line", "[values][cmdline]") {
    refuses("cmdline: {add: [@]}", k_breaks);
    refuses("cmdline: {remove: [@]}", k_breaks);
    refuses("cmdline: {set: {console: @}}", k_breaks);
    refuses("cmdline: {set: {@: x}}", k_breaks);
    CHECK_THAT(error_of("cmdline: {add: [\"a=\\\"b\"]}"), Contains("has an unpaired '\"'"));
    CHECK(error_of("cmdline: {add: [\"a=\\\"b c\\\"\"]}") == "");
    CHECK(error_of("cmdline: {add: [\"a b\"]}") != "");
}

TEST_CASE("config.txt: settings, lines and sections stay on their line", "[values][config_txt]") {
    refuses("config_txt: {set: {dtparam: @}}", k_breaks);
    refuses("config_txt: {lines: [@]}", k_breaks);
    refuses("config_txt: {section: @, set: {a: 1}}", k_breaks);
    refuses("config_txt: {set: {@: 1}}", k_breaks);
    refuses("config_txt: {sections: {@: {a: 1}}}", k_breaks);
    CHECK(error_of("config_txt: {section: \"pi4]#\", set: {a: 1}}") != "");
    CHECK(error_of("config_txt: {set: {\"a=b\": 1}}") != "");
}

TEST_CASE("systemd units: unit names and default target", "[values][systemd]") {
    for (const char* key : {"enable", "disable", "mask", "unmask"}) {
        refuses(std::string("systemd: {") + key + ": [@]}", k_breaks);
        refuses(std::string("systemd: {") + key + ": [@]}", k_quoting);
    }
    refuses("systemd: {default_target: @}", k_breaks);
}

TEST_CASE("cloud-init: instance id and meta-data", "[values][cloud_init]") {
    refuses("cloud_init: {user_data_inline: \"#cloud-config\\n{}\\n\", instance_id: @}", k_breaks);
    refuses("cloud_init: {user_data_inline: \"#cloud-config\\n{}\\n\", instance_id: @}", k_quoting);
    refuses("cloud_init: {user_data_inline: \"#cloud-config\\n{}\\n\", location: @}", k_breaks);
    // meta-data values are written double-quoted with escapes: any text stays one YAML value.
    Tree tree;
    tree.put("/usr/bin/cloud-init", file("#!/usr/bin/python3\n", 0755));
    tree.put("/etc/cloud/cloud.cfg", file("datasource_list: [NoCloud, None]\n"));
    Diagnostics diag;
    auto step = parse_step(
        "cloud_init: {user_data_inline: \"#cloud-config\\n{}\\n\", location: seed-dir, schema_check: false,"
        " meta_data: {k: \"x\\nlocal-hostname: evil\\0\\\"#\"}}",
        diag);
    diag.checkpoint();
    REQUIRE(step);
    step->apply(tree, StepApplyEnv{k_step_now});
    const Entry* meta = tree.find("/var/lib/cloud/seed/nocloud/meta-data");
    REQUIRE(meta);
    std::string text = read_all(meta->content);
    CHECK_THAT(text, Contains("k: \"x\\nlocal-hostname: evil\\x00\\\"#\"\n"));
    CHECK_THAT(text, !Contains("\nlocal-hostname"));
}

TEST_CASE("passwd, group and shadow: every field of a user", "[values][users]") {
    for (std::string tmpl :
         {"users: [{name: @}]", "users: [{name: pi, groups: [@]}]", "users: [{name: pi, primary_group: @}]",
          "users: [{name: pi, shell: @}]", "users: [{name: pi, home: @}]", "users: [{name: pi, gecos: @}]",
          "users: [{name: pi, password_hash: @}]"}) {
        refuses(tmpl, k_breaks);
    }
    for (std::string tmpl :
         {"users: [{name: @}]", "users: [{name: pi, groups: [@]}]", "users: [{name: pi, primary_group: @}]"})
        refuses(tmpl, k_quoting);
    CHECK(error_of("users: [{name: pi, gecos: \"a:b\"}]") != "");
    CHECK(error_of("users: [{name: pi, home: \"/home/a:b\"}]") != "");
    // A hash's rounds= field is not crypt64 and was not looked at.
    CHECK(error_of("users: [{name: pi, password_hash: \"$6$rounds=5000\\nroot::0:0::/:/bin/sh$salt$" +
                   std::string(86, 'a') + "\"}]") != "");
    CHECK(error_of("users: [{name: pi, password_hash: \"$6$rounds=5:0$salt$" + std::string(86, 'a') +
                   "\"}]") != "");
    // '#' is only text in a gecos field.
    CHECK(error_of("users: [{name: pi, gecos: \"Pi #1, room 2\"}]") == "");
}

TEST_CASE("files: owners are checked at validate, dest is one line", "[values][files]") {
    CHECK(error_of("files: {content: x, dest: /x, owner: pi, group: \"1000\"}") == "");
    CHECK(error_of("files: {content: x, dest: /x, owner: \"4294967294\"}") == "");
    for (const char* bad : {"\"-1\"", "\"99999999999\"", "\"4294967295\"", "\"a b\"", "\"a\\nb\"", "\"\""}) {
        INFO(bad);
        CHECK_THAT(error_of(std::string("files: {content: x, dest: /x, owner: ") + bad + "}"),
                   Contains("owner"));
        CHECK_THAT(error_of(std::string("files: {content: x, dest: /x, group: ") + bad + "}"),
                   Contains("group"));
    }
    refuses("files: {content: x, dest: @}", k_breaks);
}

TEST_CASE("containerd, sysctl and modules-load: versions, keys and values",
          "[values][kubernetes_prereqs][containerd]") {
    refuses("kubernetes_prereqs: {modules: [@]}", k_breaks);
    refuses("kubernetes_prereqs: {modules: [@]}", k_quoting);
    refuses("kubernetes_prereqs: {sysctl: {@: 1}}", k_breaks);
    refuses("kubernetes_prereqs: {sysctl: {net.ipv4.ip_forward: @}}", k_breaks);
    refuses("kubernetes_prereqs: {swap: @}", k_breaks);
    for (const Hostile& h : k_breaks) {
        INFO(h.what);
        CHECK_THAT(error_of(std::string(
                                "containerd: {containerd: /nonexistent, runc: /nonexistent, version: \"1.7") +
                            h.yaml + "\"}"),
                   Contains("version '"));
        CHECK_THAT(
            error_of(
                std::string("containerd: {containerd: /nonexistent, runc: /nonexistent, config: \"default") +
                h.yaml + "\"}"),
            Contains("config '"));
    }
}

TEST_CASE("timezone and locale: names only", "[values][timezone][locale]") {
    refuses("timezone: @", k_breaks);
    refuses("timezone: @", k_quoting);
    refuses("locale: @", k_breaks);
    refuses("locale: @", k_quoting);
}

TEST_CASE("SHA256SUMS: an output's path is one line", "[values]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    for (const Hostile& h : k_breaks) {
        INFO(h.what);
        d.write("r.yaml",
                std::string("base: {dir: base}\noutputs:\n  - tar: {path: \"a") + h.yaml + ".tar\"}\n");
        CHECK(errors_of(d, "r.yaml") != "");
    }
}

TEST_CASE("a FAT entry whose name Linux cannot hold is an error naming it, never left out", "[values][fat]") {
    TempDir tmp;
    Tree tree;
    tree.put("/boot/start4.elf", file("elf\n"));
    tree.put("/boot/overlays/a.dtbo", file("dtbo\n"));
    tree.put("/boot/xtart4.elf", file("other\n"));
    std::string img = tmp.path() + "/fat.img";
    const uint64_t size = 16u << 20;
    int fd = ::open(img.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    write_fat(fd, 0, size, tree, "/boot", FatOptions{});
    ::close(fd);
    std::string bytes;
    {
        std::ifstream in(img, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string piece("x\0t\0a\0r\0t\0", 10); // the start of xtart4.elf's long name, UTF-16LE
    size_t at = bytes.find(piece);
    REQUIRE(at != std::string::npos);
    auto read_with = [&](const std::string& first_unit) {
        std::string patched = bytes;
        patched.replace(at, 2, first_unit);
        std::string p = tmp.path() + "/patched.img";
        std::ofstream(p, std::ios::binary | std::ios::trunc) << patched;
        Tree back;
        read_fat(ImageFile::open(p), 0, size, back, "/mnt");
        return back;
    };
    Tree plain = read_with(std::string("x\0", 2));
    CHECK(plain.get("/mnt/start4.elf"));
    CHECK(plain.get("/mnt/xtart4.elf"));
    CHECK(plain.get("/mnt/overlays/a.dtbo"));
    CHECK_THROWS_WITH(read_with(std::string("/\0", 2)),
                      Contains("has an entry named '/tart4.elf'") && Contains("'/' in its name"));
    // A '\\' is a name Linux holds (and the FAT writer refuses, naming it): read as it is.
    CHECK(read_with(std::string("\\\0", 2)).get("/mnt/\\tart4.elf"));
    CHECK_THROWS_WITH(read_with(std::string("s\0", 2)),
                      Contains("has an entry named 'start4.elf'") && Contains("already in that folder"));
    CHECK_THROWS_WITH(read_with(std::string("S\0", 2)),
                      Contains("already in that folder (FAT folders ignore case)"));
    CHECK_THROWS_WITH(read_with(std::string("\0\0", 2)), Contains("a name no file can have"));
    CHECK_THROWS_WITH(read_with(std::string("\x00\xd8", 2)), Contains("unpaired UTF-16 surrogate"));
}

TEST_CASE("SOURCE_DATE_EPOCH is held to the same range as epoch:", "[values]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", "base: {dir: base}\noutputs:\n  - tar: {path: r.tar}\n");
    auto with_env = [&](const char* value) {
        ::setenv("SOURCE_DATE_EPOCH", value, 1);
        std::string out = errors_of(d, "r.yaml");
        ::unsetenv("SOURCE_DATE_EPOCH");
        return out;
    };
    CHECK(with_env("1700000000") == "");
    CHECK(with_env("4294967295") == "");
    CHECK(with_env("4294967296") == "SOURCE_DATE_EPOCH=4294967296 is after 4294967295 (2106-02-07), the "
                                    "latest time every output can store");
    CHECK(with_env("9223372036854775807") != "");
    CHECK(with_env("99999999999999999999") != "");
    CHECK(with_env("-1") == "SOURCE_DATE_EPOCH='-1' is not a number of seconds");
    CHECK(with_env("17e8") != "");
}

TEST_CASE("ext4 stores times up to the epoch limit as the kernel reads them", "[values][ext4]") {
    TempDir d;
    Tree in("base", {1700000000, 0});
    // 2038-01-19T03:14:08Z, the first second past signed 32 bits; 2106-02-07, the recipe's limit.
    for (int64_t t :
         {int64_t{0}, int64_t{2147483647}, int64_t{2147483648}, int64_t{3000000000}, validate::k_max_epoch})
        in.put("/t" + std::to_string(t), Entry::file(make_blob("x"), 0644, {t, 5}));
    uint64_t size = 16ull << 20;
    std::string img = d.write("root.ext4", "");
    REQUIRE(::truncate(img.c_str(), static_cast<off_t>(size)) == 0);
    ext4::Options o;
    o.time = {1700000000, 0};
    auto r = ext4::write(in, img, 0, size, o);
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());
    Tree out("base");
    REQUIRE(ext2::read_tree(ImageFile::open(img), 0, "test", out, "/").ok());
    for (int64_t t :
         {int64_t{0}, int64_t{2147483647}, int64_t{2147483648}, int64_t{3000000000}, validate::k_max_epoch}) {
        INFO(t);
        REQUIRE(out.get("/t" + std::to_string(t)));
        CHECK(out.get("/t" + std::to_string(t))->mtime.sec == t);
    }
    // debugfs, an independent reader, agrees on the one past 2038.
    std::string cmd = "debugfs -R 'stat /t3000000000' " + img + " 2>/dev/null";
    std::string text;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0)
            text.append(buf, n);
        ::pclose(p);
    }
    CHECK_THAT(text, Contains("mtime: 0xb2d05e00:00000015 -- "));
    CHECK_THAT(text, Contains("2065"));
}

TEST_CASE("folders a tarball implies but does not list get the build's time", "[values][archive]") {
    TempDir d;
    Tree src("base", {1600000000, 0});
    src.put("/etc/hostname", Entry::file(make_blob("x\n"), 0644, {1600000000, 0}));
    std::string tar = d.path() + "/in.tar";
    archive::TarOptions options;
    REQUIRE(archive::write_tarball(src, tar, options).ok());
    // Keep only the file: "./etc/" and "./" are left out of the copy.
    std::string listed = d.path() + "/files-only.tar";
    std::string cmd =
        "cd " + d.path() +
        " && mkdir x && bsdtar -xf in.tar -C x && bsdtar -cf files-only.tar -C x --format pax ./etc/hostname";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto source = make_tarball_source(listed, "");
    Tree t = source->read({1700000000, 0});
    REQUIRE(t.get("/etc"));
    CHECK(t.get("/etc")->mtime.sec == 1700000000);
    CHECK(t.get("/")->mtime.sec == 1700000000);
    CHECK(t.get("/etc/hostname")->mtime.sec == 1600000000);
}

TEST_CASE("non-UTF-8 names from a base are kept byte for byte in tar, refused by FAT", "[values][archive]") {
    TempDir d;
    Tree src("base", {1700000000, 0});
    src.put("/home/caf\xe9", Entry::file(make_blob("x\n"), 0644, {1700000000, 0}));
    src.put("/home/d\xff/f", Entry::file(make_blob("y\n"), 0644, {1700000000, 0}));
    std::string tar = d.path() + "/t.tar";
    REQUIRE(archive::write_tarball(src, tar, archive::TarOptions{}).ok());
    Tree back("base");
    REQUIRE(archive::read_tarball(tar, back).ok());
    CHECK(back.get("/home/caf\xe9"));
    CHECK(back.get("/home/d\xff/f"));
    // GNU tar, an independent reader, extracts the same bytes.
    std::string cmd = "cd " + d.path() + " && mkdir g && tar -xf t.tar -C g 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(std::filesystem::exists(d.path() + "/g/home/caf\xe9"));
    CHECK(std::filesystem::exists(d.path() + "/g/home/d\xff/f"));
    std::string img = d.path() + "/fat.img";
    int fd = ::open(img.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    CHECK_THROWS_WITH(write_fat(fd, 0, 16u << 20, src, "/home", FatOptions{}),
                      "cannot write '/home/caf\\xe9' to FAT: its name is not valid UTF-8");
    ::close(fd);
}

TEST_CASE("an output file that holds what the image keeps private is created 0600", "[values]") {
    Tree open_tree("base", {1700000000, 0});
    open_tree.put("/etc/hostname", Entry::file(make_blob("x\n"), 0644, {}));
    CHECK(output_file_mode(open_tree) == 0644);
    Tree keys = open_tree.fork("keys");
    keys.put("/etc/ssh/ssh_host_ed25519_key", Entry::file(make_blob("k\n"), 0600, {}));
    CHECK(output_file_mode(keys) == 0600);
    Tree root_home = open_tree.fork("home");
    root_home.put("/root", Entry::directory(0700, {}));
    CHECK(output_file_mode(root_home) == 0600);

    TempDir d;
    mode_t old = ::umask(022);
    create_output_file(d.path() + "/a", 0600);
    create_output_file(d.path() + "/b", 0644);
    ::umask(old);
    struct stat st {};
    REQUIRE(::stat((d.path() + "/a").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((d.path() + "/b").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
    CHECK_THROWS(create_output_file(d.path() + "/a", 0600)); // never an existing file
    // libarchive opens the file by name and keeps its mode.
    REQUIRE(archive::write_tarball(keys, d.path() + "/a", archive::TarOptions{}).ok());
    REQUIRE(::stat((d.path() + "/a").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_size > 0);
}
