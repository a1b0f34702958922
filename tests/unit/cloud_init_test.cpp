#include "core/host_tool.hpp"
#include "core/log.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <sys/stat.h>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

using namespace ib;
using namespace ib::test;

namespace {

// A Debian image with cloud-init installed, a default locale and a Raspberry Pi boot partition at
// /boot/firmware.
Tree with_cloud_init() {
    Tree t;
    t.put("/usr/bin/cloud-init", file("#!/usr/bin/python3\n", 0755));
    t.put("/etc/default/locale", file("LANG=en_GB.UTF-8\n"));
    t.put("/etc/cloud/cloud.cfg", file("datasource_list: [NoCloud, None]\n"));
    t.put("/boot/firmware/cmdline.txt", file("console=tty1 root=PARTUUID=abcd-02 rootwait\n"));
    return t;
}

std::string snapshot(const Tree& t) {
    std::string s;
    t.walk([&](const std::string& p, const Entry& e) {
        s += p + " " + std::string(type_name(e.type)) + " " + std::to_string(e.perm) + " " + std::to_string(e.uid) +
             ":" + std::to_string(e.gid) + " " + std::to_string(e.mtime.sec) + " " + e.link + "\n";
        if (e.type == FileType::Regular) s += read_all(e.content);
    });
    return s;
}

// What the step writes to stderr while it runs.
std::string stderr_of(const std::function<void()>& run) {
    std::stringstream captured;
    std::streambuf* old = std::cerr.rdbuf(captured.rdbuf());
    try {
        run();
    } catch (...) {
        std::cerr.rdbuf(old);
        throw;
    }
    std::cerr.rdbuf(old);
    return captured.str();
}

std::string instance_id(const Tree& t, const std::string& dir) {
    std::string meta = t.read_file(dir + "/meta-data");
    REQUIRE(meta.starts_with("instance-id: \""));
    return meta.substr(14, meta.find('"', 14) - 14);
}

const std::string k_seed = "/var/lib/cloud/seed/nocloud";

} // namespace

TEST_CASE("cloud_init writes a NoCloud seed in the seed folder", "[step][cloud_init]") {
    const std::string yaml = "cloud_init:\n"
                             "  user_data_inline: |\n"
                             "    #cloud-config\n"
                             "    runcmd: [touch /ok]\n"
                             "  meta_data: {local-hostname: worker-1, 'yes': \"a \\\"b\\\"\\n\", n: [1, x: 2]}\n"
                             "  instance_id: worker-1-7\n"
                             "  network_config_inline: |\n"
                             "    version: 2\n"
                             "    ethernets: {eth0: {dhcp4: true}}\n"
                             "  location: seed-dir\n";
    Tree t = with_cloud_init();
    std::string err = stderr_of([&] { run_step(yaml, t); });
    CHECK(err == "");
    CHECK(t.read_file(k_seed + "/user-data") == "#cloud-config\nruncmd: [touch /ok]\n");
    CHECK(t.read_file(k_seed + "/meta-data") ==
          "instance-id: \"worker-1-7\"\n"
          "local-hostname: \"worker-1\"\n"
          "\"yes\": \"a \\\"b\\\"\\n\"\n"
          "\"n\":\n"
          "  - \"1\"\n"
          "  -\n"
          "    x: \"2\"\n");
    CHECK(t.read_file(k_seed + "/network-config") == "version: 2\nethernets: {eth0: {dhcp4: true}}\n");
    CHECK(t.get(k_seed + "/user-data")->perm == 0600);
    CHECK(t.get(k_seed + "/meta-data")->perm == 0644);
    CHECK(t.get(k_seed + "/network-config")->perm == 0600);
    CHECK(t.get(k_seed + "/user-data")->uid == 0);
    CHECK(t.get(k_seed + "/meta-data")->mtime.sec == k_step_now.sec);
    CHECK(t.get("/var/lib/cloud")->perm == 0755);
    CHECK_FALSE(t.exists("/boot/firmware/user-data"));

    // meta-data reads back as the recipe wrote it, every value a string.
    Diagnostics diag;
    Doc meta = yaml::parse(t.read_file(k_seed + "/meta-data"), "meta-data", diag);
    CHECK_FALSE(diag.has_errors());
    REQUIRE(meta.is_map());
    CHECK(meta.find("yes")->str() == "a \"b\"\n");
    REQUIRE(meta.find("n")->is_seq());
    CHECK(meta.find("n")->items()[1].find("x")->str() == "2");

    Tree once = t;
    run_step(yaml, t);
    CHECK(snapshot(t) == snapshot(once));
}

TEST_CASE("cloud_init's default instance-id follows the seed's content", "[step][cloud_init]") {
    auto id_for = [](const std::string& options) {
        Tree t = with_cloud_init();
        run_step("cloud_init: {location: seed-dir, " + options + "}", t);
        return instance_id(t, k_seed);
    };
    std::string base = id_for("user_data_inline: \"#cloud-config\\n\", meta_data: {local-hostname: a}");
    CHECK(base.size() == 20);
    CHECK(base.starts_with("iid-"));
    CHECK(base.find_first_not_of("0123456789abcdef", 4) == std::string::npos);
    CHECK(id_for("user_data_inline: \"#cloud-config\\n\", meta_data: {local-hostname: a}") == base);
    CHECK(id_for("user_data_inline: \"#cloud-config\\n\", meta_data: {local-hostname: b}") != base);
    CHECK(id_for("user_data_inline: \"#cloud-config\\nx: 1\\n\", meta_data: {local-hostname: a}") != base);
    CHECK(id_for("user_data_inline: \"#cloud-config\\n\", meta_data: {local-hostname: a}, "
                 "network_config_inline: 'version: 2'") != base);
}

TEST_CASE("cloud_init location auto picks the boot folder only when the image reads it", "[step][cloud_init]") {
    const std::string step = "cloud_init: {user_data_inline: \"#!/bin/sh\\necho hi\\n\"}";
    SECTION("no sign: the seed folder") {
        Tree t = with_cloud_init();
        run_step(step, t);
        CHECK(t.read_file(k_seed + "/user-data") == "#!/bin/sh\necho hi\n");
        CHECK_FALSE(t.exists("/boot/firmware/user-data"));
    }
    SECTION("a NoCloud fs_label in cloud.cfg.d") {
        Tree t = with_cloud_init();
        t.put("/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg", file("datasource:\n  NoCloud:\n    fs_label: bootfs\n"));
        run_step(step, t);
        CHECK(t.read_file("/boot/firmware/user-data") == "#!/bin/sh\necho hi\n");
        CHECK(t.get("/boot/firmware/user-data")->perm == 0600);
        CHECK(t.exists("/boot/firmware/meta-data"));
        CHECK_FALSE(t.exists(k_seed));
        CHECK(t.read_file("/boot/firmware/cmdline.txt") == "console=tty1 root=PARTUUID=abcd-02 rootwait\n");
    }
    SECTION("a seed already in the boot folder, whose network-config stays") {
        Tree t = with_cloud_init();
        t.put("/boot/firmware/meta-data", file("instance-id: rpi-os-image\n"));
        t.put("/boot/firmware/network-config", file("network: {version: 2}\n"));
        run_step(step, t);
        CHECK(t.read_file("/boot/firmware/user-data") == "#!/bin/sh\necho hi\n");
        CHECK(t.read_file("/boot/firmware/network-config") == "network: {version: 2}\n");
        CHECK(instance_id(t, "/boot/firmware").starts_with("iid-"));
    }
    SECTION("HypriotOS, boot partition at /boot") {
        Tree t;
        t.put("/etc/cloud/cloud.cfg", file("datasource_list: [NoCloud]\n"));
        t.put("/etc/default/locale", file("LANG=en_US.UTF-8\n"));
        t.put("/boot/config.txt", file("hdmi_force_hotplug=1\n"));
        t.put("/usr/lib/os-release", file("PRETTY_NAME=\"Raspbian GNU/Linux 10 (buster)\"\nHYPRIOT_OS=\"HypriotOS/armhf\"\n"));
        t.put("/etc/os-release", link("../usr/lib/os-release"));
        run_step(step, t);
        CHECK(t.exists("/boot/user-data"));
        CHECK_FALSE(t.exists(k_seed));
    }
    SECTION("a NoCloud setting that reads only the seed folder does not count") {
        Tree t = with_cloud_init();
        t.put("/etc/cloud/cloud.cfg.d/90_dpkg.cfg", file("datasource_list: [ NoCloud, ConfigDrive, None ]\n"));
        run_step(step, t);
        CHECK(t.exists(k_seed + "/user-data"));
    }
    SECTION("no boot folder at all") {
        Tree t;
        t.put("/etc/cloud/cloud.cfg.d/99.cfg", file("datasource: {NoCloud: {fs_label: cidata}}\n"));
        run_step(step, t);
        CHECK(t.exists(k_seed + "/user-data"));
    }
}

TEST_CASE("cloud_init location boot needs a boot folder", "[step][cloud_init]") {
    Tree t;
    t.put("/usr/bin/cloud-init", file("", 0755));
    t.put("/etc/default/locale", file("LANG=C.UTF-8\n"));
    CHECK_THROWS_WITH(run_step("cloud_init: {user_data_inline: \"#cloud-config\\n\", location: boot}", t),
                      Catch::StartsWith("location 'boot' needs a Raspberry Pi boot partition"));
    Tree pi = with_cloud_init();
    run_step("cloud_init: {user_data_inline: \"#cloud-config\\n\", location: boot}", pi);
    CHECK(pi.read_file("/boot/firmware/user-data") == "#cloud-config\n");
}

TEST_CASE("cloud_init warns when cloud-init would fail on the image's missing locale", "[step][cloud_init]") {
    const std::string warning = "warning: t.yaml:1:1: step 'cloud_init': the image has no default locale (no LANG= "
                                "in /etc/default/locale), so cloud-init sets en_US.UTF-8 at first boot, which "
                                "Debian's locale-gen does not make, and cloud-config.service fails; add step "
                                "'locale' (C.UTF-8 needs nothing made) before this one, or 'locale:' to user-data\n";
    const std::string plain = "cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: [true]\\n\"}";
    for (const char* locale : {"", "# LANG=en_US.UTF-8\n", "LANG=\n", "LC_ALL=C\n"}) {
        INFO("/etc/default/locale: '" << locale << "'");
        Tree t = with_cloud_init();
        if (*locale) t.put("/etc/default/locale", file(locale));
        else t.remove("/etc/default/locale");
        CHECK(stderr_of([&] { run_step(plain, t); }) == warning);
        CHECK(t.read_file(k_seed + "/user-data") == "#cloud-config\nruncmd: [true]\n");
    }
    Tree t = with_cloud_init();
    t.remove("/etc/default/locale");
    // user-data that sets the locale, first or later, is fine.
    CHECK(stderr_of([&] { run_step("cloud_init: {user_data_inline: \"#cloud-config\\nlocale: C.UTF-8\\n\"}", t); }) == "");
    CHECK(stderr_of([&] { run_step("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: [true]\\nlocale: "
                                   "en_GB.UTF-8\\n\"}", t); }) == "");
    // A locale under another key is not cloud-init's locale.
    CHECK(stderr_of([&] { run_step("cloud_init: {user_data_inline: \"#cloud-config\\nx:\\n  locale: C\\n\"}", t); }) ==
          warning);
    t.put("/etc/default/locale", file("  LANG=C.UTF-8\n"));
    CHECK(stderr_of([&] { run_step(plain, t); }) == "");
}

TEST_CASE("cloud_init warns when the image has no cloud-init, and still writes the seed", "[step][cloud_init]") {
    Tree t;
    std::string err;
    REQUIRE_NOTHROW(err = stderr_of([&] { run_step("cloud_init: {user_data_inline: \"#cloud-config\\n\"}", t); }));
    CHECK(err == "warning: t.yaml:1:1: step 'cloud_init': cloud-init is not installed in the image: the seed will "
                 "be ignored\n");
    CHECK(t.read_file(k_seed + "/user-data") == "#cloud-config\n");
    Tree only_etc;
    only_etc.put("/etc/cloud", dir());
    only_etc.put("/etc/default/locale", file("LANG=C.UTF-8\n"));
    CHECK(stderr_of([&] { run_step("cloud_init: {user_data_inline: \"#cloud-config\\n\"}", only_etc); }) == "");
}

TEST_CASE("cloud_init reads host files, and describe() never shows user-data", "[step][cloud_init]") {
    TempDir d;
    std::string ud = d.write("user-data.yaml", "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n"
                                               "password: hunter2\n");
    std::string nc = d.write("network.yaml", "network:\n  version: 1\n  config: []\n");
    const std::string yaml = "cloud_init: {user_data: " + ud + ", network_config: " + nc +
                             ", instance_id: 'node:1', meta_data: {a: b}}";
    Tree t = with_cloud_init();
    run_step(yaml, t);
    CHECK(t.read_file(k_seed + "/user-data") ==
          "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\npassword: hunter2\n");
    CHECK(t.read_file(k_seed + "/network-config") == "network:\n  version: 1\n  config: []\n");
    std::string described = describe_step(yaml);
    CHECK(described == "write a cloud-init NoCloud seed with instance-id 'node:1' to the boot folder if the image reads "
                       "a seed there, else /var/lib/cloud/seed/nocloud: user-data (jinja #cloud-config, " + ud +
                           "), meta-data (+1 key), network-config (" + nc + ")");
    CHECK(described.find("hunter2") == std::string::npos);
}

TEST_CASE("cloud_init checks user-data: header, YAML with its own file's places", "[step][cloud_init]") {
    TempDir d;
    std::string bad = d.write("bad.yaml", "#cloud-config\nruncmd:\n  - a\n - b\n");
    std::string dup = d.write("dup.yaml", "#cloud-config\nruncmd: [a]\nruncmd: [b]\n");
    std::string list = d.write("list.yaml", "#cloud-config\n- a\n");
    std::string mime = d.write("mime.txt", "Content-Type: multipart/mixed; boundary=\"==BOUNDARY==\"\n");
    CHECK(error_of("cloud_init: {user_data: " + bad + "}") ==
          bad + ":4:2: YAML syntax: end of map not found\n"
                 "t.yaml:1:25: step 'cloud_init': user_data '" + bad + "' is not valid YAML");
    CHECK(error_of("cloud_init: {user_data: " + dup + "}") ==
          dup + ":3:1: duplicate key 'runcmd'\n"
                 "t.yaml:1:25: step 'cloud_init': user_data '" + dup + "' is not valid YAML");
    CHECK(error_of("cloud_init: {user_data: " + list + "}") ==
          list + ":2:1: step 'cloud_init': #cloud-config user-data must be a YAML map, found a list");
    CHECK(error_of("cloud_init: {user_data: " + mime + "}") ==
          mime + ":1:1: step 'cloud_init': user-data must start with '#cloud-config', a '#!' script line or "
                 "'## template: jinja'; it starts with 'Content-Type: multipart/mixed; boundary=...'");
    CHECK(error_of("cloud_init: {user_data: " + d.path() + "/missing}") ==
          "t.yaml:1:25: step 'cloud_init': cannot read user_data '" + d.path() +
              "/missing': No such file or directory");
    CHECK(error_of("cloud_init:\n"
                   "  user_data_inline: |\n"
                   "    #cloud-config\n"
                   "    a: [b\n") ==
          "t.yaml:2:21: step 'cloud_init': user_data_inline is not valid YAML\n"
          "t.yaml:2:21 user_data_inline:3:1: YAML syntax: end of sequence flow not found");
    CHECK(error_of("cloud_init: {user_data_inline: ''}") ==
          "t.yaml:1:32: step 'cloud_init': user-data must start with '#cloud-config', a '#!' script line or "
          "'## template: jinja'; it is empty");
    CHECK(error_of("cloud_init: {user_data_inline: \"## template: jinja\\n#cloud-confi\\n\"}") ==
          "t.yaml:1:32: step 'cloud_init': user-data: after '## template: jinja' comes '#cloud-config' or a '#!' "
          "script line, not '#cloud-confi'");
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config  \\r\\nruncmd: [x]\\r\\n\"}") == "");
}

TEST_CASE("cloud_init checks its options", "[step][cloud_init]") {
    TempDir d;
    std::string nc = d.write("nc.yaml", "ethernets: {eth0: {dhcp4: true}}\n");
    CHECK(error_of("cloud_init:\n"
                   "  user_data_inline: \"#cloud-config\\n\"\n"
                   "  meta_data: {instance-id: x, local-hostname: y}\n"
                   "  instance_id: a/b\n"
                   "  network_config: " + nc + "\n"
                   "  location: seed_dir\n") ==
          nc + ":1:1: step 'cloud_init': network-config must be a YAML map with 'version: 2' (or 1), or a "
               "'network:' map holding it\n"
          "t.yaml:3:15: step 'cloud_init': give the instance id as 'instance_id', not in 'meta_data'\n"
          "t.yaml:4:16: step 'cloud_init': instance_id 'a/b' contains '/' (only letters, digits, '.', '_', ':' and "
          "'-': cloud-init names a folder after it)\n"
          "t.yaml:6:13: step 'cloud_init': location 'seed_dir' is not auto, boot or seed-dir (did you mean "
          "'seed-dir'?)");
    CHECK(error_of("cloud_init: {meta_data: [a], network_config_inline: 'version: 2', network_config: x}") ==
          "t.yaml:1:13: step 'cloud_init': needs one of 'user_data', 'user_data_inline'\n"
          "t.yaml:1:25: step 'cloud_init': 'meta_data' must be a map of keys, found a list\n"
          "t.yaml:1:53: step 'cloud_init': 'network_config', 'network_config_inline' exclude each other; give one");
    CHECK(error_of("cloud_init: {user_data_inline: '#!/bin/sh', user_data: x, network_config_inline: 'version: 3'}") ==
          "t.yaml:1:32: step 'cloud_init': 'user_data', 'user_data_inline' exclude each other; give one\n"
          "t.yaml:1:82: step 'cloud_init': network-config must be a YAML map with 'version: 2' (or 1), or a "
          "'network:' map holding it");
    std::string broken = d.write("broken.yaml", "version: 2\nethernets: {eth0: \n");
    CHECK(error_of("cloud_init: {user_data_inline: '#!/bin/sh', network_config: " + broken + "}") ==
          broken + ":3:1: YAML syntax: end of map flow not found\n"
                   "t.yaml:1:61: step 'cloud_init': network_config '" + broken + "' is not valid YAML");
    CHECK(error_of("cloud_init: {user_data_inline: '#!/bin/sh', network_config_inline: 'network: {version: 2}'}") == "");
    CHECK(error_of("cloud_init: {user_data_inline: '#!/bin/sh', network_config_inline: 'network: {config: []}'}") ==
          "t.yaml:1:68: step 'cloud_init': network-config must be a YAML map with 'version: 2' (or 1), or a "
          "'network:' map holding it");
    CHECK(error_of("cloud_init: x") == "t.yaml:1:13: step 'cloud_init': expected a map of options, found a string");
}

namespace {

// Sets IMGBUILD_CLOUD_INIT for one test, and puts back what main() set.
struct CloudInitProgram {
    explicit CloudInitProgram(const std::string& path) { ::setenv("IMGBUILD_CLOUD_INIT", path.c_str(), 1); }
    ~CloudInitProgram() { ::setenv("IMGBUILD_CLOUD_INIT", "", 1); }
};

} // namespace

// The host's `cloud-init schema`, played by a script: what the step does with its verdicts.
TEST_CASE("cloud_init runs the host's cloud-init schema on #cloud-config user-data", "[step][cloud_init]") {
    TempDir d;
    // Says what cloud-init 22.4 says for a wrong type, and counts its runs.
    std::string fake = d.write("cloud-init", "#!/bin/sh\n"
                                             "echo run >> " + d.path() + "/runs\n"
                                             "[ \"$1 $2 $3\" = 'schema --config-file /dev/stdin' ] || exit 9\n"
                                             "if grep -q 'runcmd: 42' /dev/stdin; then\n"
                                             "  echo 'Cloud config schema deprecations: '\n"
                                             "  echo 'Error:' >&2\n"
                                             "  echo \"Cloud config schema errors: runcmd: 42 is not of type 'array'\" >&2\n"
                                             "  exit 1\n"
                                             "fi\n");
    REQUIRE(::chmod(fake.c_str(), 0755) == 0);
    CloudInitProgram use(fake);
    auto runs = [&] {
        std::ifstream in(d.path() + "/runs");
        std::string line;
        long n = 0;
        while (std::getline(in, line)) ++n;
        return n;
    };

    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: [[true]]\\n\"}") == "");
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: 42\\n\"}") ==
          "t.yaml:1:32: step 'cloud_init': cloud-init schema (" + fake + " on this host) rejects user_data_inline: "
          "runcmd: 42 is not of type 'array' (give 'schema_check: false' if the image's cloud-init accepts it)");
    // A host file: the complaint points at the key it names.
    d.write("ud.yaml", "#cloud-config\nhostname: a\nruncmd: 42\n");
    CHECK(error_of("cloud_init: {user_data: " + d.path() + "/ud.yaml}") ==
          d.path() + "/ud.yaml:3:1: step 'cloud_init': cloud-init schema (" + fake + " on this host) rejects user_data '" +
              d.path() + "/ud.yaml': runcmd: 42 is not of type 'array' (give 'schema_check: false' if the image's "
              "cloud-init accepts it)");
    long before = runs();
    CHECK(before == 3);
    // The same text again is not checked again; schema_check: false and scripts are not checked at all.
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: [[true]]\\n\"}") == "");
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: 42\\n\", schema_check: false}") == "");
    CHECK(error_of("cloud_init: {user_data_inline: \"#!/bin/sh\\necho runcmd: 42\\n\"}") == "");
    CHECK(runs() == before);
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\n\", schema_check: maybe}") ==
          "t.yaml:1:65: step 'cloud_init': 'schema_check' must be true or false, found 'maybe'");
}

TEST_CASE("cloud_init without a cloud-init on the host checks the YAML only", "[step][cloud_init]") {
    CloudInitProgram use("/nonexistent/cloud-init");
    CHECK(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: 42\\n\"}") == "");
}

// The real cloud-init (ci/deps.sh installs it for the test run: without it, this fails).
TEST_CASE("cloud_init user-data passes cloud-init schema", "[step][cloud_init][host]") {
    auto real = host_tool::find_program("cloud-init");
    if (!real) FAIL("cloud-init is missing: install it (ci/deps.sh does); its schema check is the point of this test");
    CloudInitProgram use(*real);
    Tree t = with_cloud_init();
    run_step("cloud_init:\n"
             "  user_data_inline: |\n"
             "    #cloud-config\n"
             "    hostname: worker-1\n"
             "    runcmd: [[touch, /ok]]\n"
             "  location: seed-dir\n",
             t);
    TempDir d;
    std::string good = d.write("user-data", t.read_file(k_seed + "/user-data"));
    CHECK(std::system(("cloud-init schema -c " + good + " >/dev/null 2>&1").c_str()) == 0);
    // The check can fail: a wrong type is caught, by cloud-init itself and through the step.
    std::string bad = d.write("bad", "#cloud-config\nruncmd: 42\n");
    CHECK(std::system(("cloud-init schema -c " + bad + " >/dev/null 2>&1").c_str()) != 0);
    CHECK_THAT(error_of("cloud_init: {user_data_inline: \"#cloud-config\\nruncmd: 42\\n\"}"),
               Catch::Contains("rejects user_data_inline: runcmd: 42 is not of type 'array'"));
}
