#include "core/arch.hpp"
#include "core/error.hpp"
#include "ext/package.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"
#include "steps/step.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

using namespace ib;
using namespace ib::test;

namespace {

constexpr Timestamp k_now{1700000000, 0};

// A 64-byte ELF64 little-endian header for `machine`, then `body`: enough for the architecture check.
std::string elf(uint16_t machine, const std::string& body = "") {
    std::string h(64, '\0');
    h[0] = 0x7F, h[1] = 'E', h[2] = 'L', h[3] = 'F';
    h[4] = 2;  // ELFCLASS64
    h[5] = 1;  // little-endian
    h[6] = 1;  // EV_CURRENT
    h[16] = 2; // ET_EXEC
    h[18] = static_cast<char>(machine & 0xFF);
    h[19] = static_cast<char>(machine >> 8);
    h[20] = 1;
    return h + body;
}

void sh(const std::string& command) {
    INFO(command);
    REQUIRE(std::system(command.c_str()) == 0);
}


std::unique_ptr<Step> parsed(const std::string& yaml) {
    Diagnostics diag;
    auto step = parse_step(yaml, diag);
    diag.checkpoint();
    REQUIRE(step);
    return step;
}


// A merged-/usr arm64 image whose architecture shows only in /bin/sh.
Tree arm64_image() {
    Tree t;
    t.put("/bin", link("usr/bin"));
    t.put("/lib", link("usr/lib"));
    t.put("/usr/bin/dash", file(elf(arch::k_aarch64, "dash"), 0755));
    t.put("/usr/bin/sh", link("dash"));
    t.put("/usr/local/bin", dir());
    return t;
}

// Release files as upstream ships them, all for `machine`, in `d`: containerd-VERSION-linux-arm64.tar.gz
// (bin/containerd, bin/containerd-shim-runc-v2, bin/ctr), runc.arm64 and cni.tgz (bridge, LICENSE).
void release_files(const TempDir& d, uint16_t machine, const std::string& version = "1.7.20") {
    d.write("rel/bin/containerd", elf(machine, "containerd"));
    d.write("rel/bin/containerd-shim-runc-v2", elf(machine, "shim"));
    d.write("rel/bin/ctr", elf(machine, "ctr"));
    sh("tar -C " + d.path() + "/rel -czf " + d.path() + "/containerd-" + version + "-linux-arm64.tar.gz bin");
    d.write("runc.arm64", elf(machine, "runc"));
    d.write("cni/bridge", elf(machine, "bridge"));
    d.write("cni/LICENSE", "Apache License\n");
    sh("tar -C " + d.path() + "/cni -czf " + d.path() + "/cni.tgz .");
}

const char* const k_config_v2 = "version = 2\n\n"
                                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
                                "  runtime_type = \"io.containerd.runc.v2\"\n\n"
                                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n"
                                "  SystemdCgroup = true\n";

const char* const k_config_v3 = "version = 3\n\n"
                                "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
                                "  runtime_type = 'io.containerd.runc.v2'\n\n"
                                "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
                                "  SystemdCgroup = false\n";

// A .deb built by dpkg-deb from `files` (path -> content; "->x" makes a symlink to x), compressed with `z`.
std::string build_deb(const TempDir& d, const std::string& name, const std::string& control,
                      const std::vector<std::pair<std::string, std::string>>& files, const std::string& z = "xz") {
    std::string root = d.path() + "/" + name + ".d";
    d.write(name + ".d/DEBIAN/control", control);
    for (const auto& [p, content] : files) {
        if (content.rfind("->", 0) == 0) {
            std::filesystem::create_directories(std::filesystem::path(root + p).parent_path());
            std::filesystem::create_symlink(content.substr(2), root + p);
            continue;
        }
        d.write(name + ".d" + p, content);
        bool is_elf = !content.empty() && content[0] == '\x7f';
        std::filesystem::permissions(root + p, std::filesystem::perms(is_elf ? 0755 : 0644));
    }
    std::string deb = d.path() + "/" + name;
    sh("dpkg-deb --root-owner-group -Z" + z + " --build " + root + " " + deb + " > /dev/null");
    return deb;
}

std::string control(const std::string& package, const std::string& version, const std::string& arch = "arm64") {
    return "Package: " + package + "\nVersion: " + version + "\nArchitecture: " + arch +
           "\nMaintainer: Test <t@example.org>\nDescription: test package\n multi-line description\n";
}

const std::vector<std::pair<std::string, std::string>> k_containerd_deb_files = {
    {"/usr/bin/containerd", elf(arch::k_aarch64, "containerd")},
    {"/usr/bin/containerd-shim-runc-v2", elf(arch::k_aarch64, "shim")},
    {"/usr/sbin/containerd-link", "->../bin/containerd"},
    {"/lib/systemd/system/containerd.service",
     "[Service]\nExecStart=/usr/bin/containerd\n[Install]\nWantedBy=multi-user.target\n"},
    {"/etc/containerd/config.toml", "# from the package\n"},
};

} // namespace

TEST_CASE("containerd from release files: binaries, unit enabled, config.toml version 2", "[step][containerd]") {
    TempDir d;
    release_files(d, arch::k_aarch64);
    std::string yaml = "containerd: {containerd: " + d.path() +
                       "/containerd-1.7.20-linux-arm64.tar.gz, runc: " + d.path() + "/runc.arm64, cni: " + d.path() +
                       "/cni.tgz}";
    auto step = parsed(yaml);
    CHECK(step->describe() == "install containerd 1.7 from " + d.path() +
                                  "/containerd-1.7.20-linux-arm64.tar.gz, runc from " + d.path() +
                                  "/runc.arm64, CNI plugins from " + d.path() +
                                  "/cni.tgz into /opt/cni/bin; enable containerd.service; write "
                                  "/etc/containerd/config.toml (version 2, SystemdCgroup = true)");
    Tree t = arm64_image();
    step->apply(t, StepApplyEnv{k_now});

    for (const auto& [p, body] :
         std::vector<std::pair<std::string, std::string>>{{"/usr/local/bin/containerd", "containerd"},
                                                          {"/usr/local/bin/containerd-shim-runc-v2", "shim"},
                                                          {"/usr/local/bin/ctr", "ctr"},
                                                          {"/usr/local/sbin/runc", "runc"},
                                                          {"/opt/cni/bin/bridge", "bridge"}}) {
        INFO(p);
        const Entry* e = t.get(p);
        REQUIRE(e);
        CHECK(e->type == FileType::Regular);
        CHECK(e->perm == 0755);
        CHECK(e->uid == 0);
        CHECK(e->mtime == k_now);
        CHECK(read_all(e->content) == elf(arch::k_aarch64, body));
    }
    CHECK(t.get("/opt/cni/bin/LICENSE")->perm == 0755); // every CNI file; not ELF, so not checked for arch

    const Entry* unit = t.get("/usr/local/lib/systemd/system/containerd.service");
    REQUIRE(unit);
    CHECK(unit->perm == 0644);
    std::string text = read_all(unit->content);
    for (const char* line :
         {"After=network.target local-fs.target\n", "ExecStartPre=-/sbin/modprobe overlay\n",
          "ExecStart=/usr/local/bin/containerd\n", "Type=notify\n", "Delegate=yes\n", "KillMode=process\n",
          "Restart=always\n", "RestartSec=5\n", "LimitNPROC=infinity\n", "LimitCORE=infinity\n", "TasksMax=infinity\n",
          "OOMScoreAdjust=-999\n", "[Install]\nWantedBy=multi-user.target\n"})
        CHECK_THAT(text, Catch::Contains(line));
    CHECK(t.get("/etc/systemd/system/multi-user.target.wants/containerd.service")->link ==
          "/usr/local/lib/systemd/system/containerd.service");
    CHECK(t.read_file("/etc/containerd/config.toml") == k_config_v2);
    CHECK(t.get("/etc/containerd/config.toml")->perm == 0644);

    // Applying it again changes nothing.
    Tree once = t;
    step->apply(t, StepApplyEnv{k_now});
    CHECK(listing(t) == listing(once));
    CHECK(t.read_file("/etc/containerd/config.toml") == k_config_v2);
}

TEST_CASE("containerd 2.x gets config version 3; version and systemd_cgroup options; config: none",
          "[step][containerd]") {
    TempDir d;
    release_files(d, arch::k_aarch64, "2.0.0");
    std::string v2 = d.path() + "/containerd-2.0.0-linux-arm64.tar.gz";
    Tree t = arm64_image();
    parsed("containerd: {containerd: " + v2 + ", runc: " + d.path() + "/runc.arm64, systemd_cgroup: false}")
        ->apply(t, StepApplyEnv{k_now});
    CHECK(t.read_file("/etc/containerd/config.toml") == k_config_v3);
    CHECK_FALSE(t.exists("/opt/cni"));

    // `version` wins over the file name.
    Tree given = arm64_image();
    parsed("containerd: {containerd: " + v2 + ", runc: " + d.path() + "/runc.arm64, version: \"1.7\"}")
        ->apply(given, StepApplyEnv{k_now});
    CHECK(given.read_file("/etc/containerd/config.toml") == k_config_v2);

    // No version in the name: fine without a config, an error with one.
    std::filesystem::copy_file(v2, d.path() + "/containerd.tar.gz");
    Tree none = arm64_image();
    parsed("containerd: {containerd: " + d.path() + "/containerd.tar.gz, runc: " + d.path() +
           "/runc.arm64, config: none}")
        ->apply(none, StepApplyEnv{k_now});
    CHECK(none.exists("/usr/local/bin/containerd"));
    CHECK_FALSE(none.exists("/etc/containerd"));
    CHECK(error_of("containerd:\n  containerd: " + d.path() + "/containerd.tar.gz\n  runc: " + d.path() +
                   "/runc.arm64\n") ==
          "t.yaml:2:15: step 'containerd': cannot tell the containerd version of '" + d.path() +
              "/containerd.tar.gz'; give 'version' (\"1.7\", \"2.0\") to pick the config.toml format, or config: none");
}

TEST_CASE("containerd refuses binaries of another architecture", "[step][containerd]") {
    TempDir d;
    release_files(d, arch::k_aarch64);
    d.write("runc.amd64", elf(arch::k_x86_64, "runc"));
    std::string tarball = d.path() + "/containerd-1.7.20-linux-arm64.tar.gz";

    Tree t = arm64_image();
    Tree before = t;
    auto step = parsed("containerd: {containerd: " + tarball + ", runc: " + d.path() + "/runc.amd64}");
    CHECK_THROWS_WITH(step->apply(t, StepApplyEnv{k_now}),
                      "'/usr/local/sbin/runc' (from '" + d.path() + "/runc.amd64') is x86-64 but the image is arm64");
    CHECK(listing(t) == listing(before)); // checked before anything is installed

    // dpkg's base-files architecture comes before /bin/sh; every mismatch is counted.
    Tree armhf = arm64_image();
    armhf.put("/var/lib/dpkg/status", file("Package: libc6\nStatus: install ok installed\nArchitecture: arm64\n\n"
                                           "Package: base-files\nStatus: install ok installed\nArchitecture: armhf\n"));
    CHECK_THROWS_WITH(parsed("containerd: {containerd: " + tarball + ", runc: " + d.path() + "/runc.arm64}")
                          ->apply(armhf, StepApplyEnv{k_now}),
                      "'/usr/local/bin/containerd' (from '" + tarball +
                          "') is arm64 but the image is armhf (and 3 more)");

    Tree unknown;
    unknown.put("/bin/sh", file("#!/bin/busybox\n"));
    CHECK_THROWS_WITH(step->apply(unknown, StepApplyEnv{k_now}),
                      "cannot tell the image's architecture: /var/lib/dpkg/status names no base-files architecture "
                      "and /bin/sh is not an ELF binary");
}

TEST_CASE("containerd reports every bad option with its place", "[step][containerd]") {
    TempDir d;
    release_files(d, arch::k_aarch64);
    d.write("runc.html", "<html>404</html>\n");
    std::string yaml = "containerd:\n"
                       "  containerd: " +
                       d.path() +
                       "/nope.tar.gz\n"
                       "  runc: " +
                       d.path() +
                       "/runc.html\n"
                       "  version: 1.x\n"
                       "  config: maybe\n"
                       "  systemd_cgroups: true\n";
    CHECK(error_of(yaml) ==
          "t.yaml:2:15: step 'containerd': containerd '" + d.path() +
              "/nope.tar.gz': No such file or directory\n"
              "t.yaml:3:9: step 'containerd': runc '" +
              d.path() +
              "/runc.html' is neither an ELF binary nor a .deb\n"
              "t.yaml:4:12: step 'containerd': version '1.x' is not a version such as \"1.7\" or \"2.0\"\n"
              "t.yaml:5:11: step 'containerd': config 'maybe' must be 'default' or 'none'\n"
              "t.yaml:6:3: step 'containerd': unknown key 'systemd_cgroups' (did you mean 'systemd_cgroup'?)");
    CHECK(error_of("containerd: {runc: " + d.path() + "/runc.arm64}") ==
          "t.yaml:1:13: step 'containerd': missing required key 'containerd'");
    CHECK(error_of("containerd:\n  containerd: " + d.path() + "/containerd-1.7.20-linux-arm64.tar.gz\n  runc: " +
                   d.path() + "/runc.arm64\n  version: \"3.0\"\n") ==
          "t.yaml:4:12: step 'containerd': containerd 3.0 has no known config.toml format; use config: none");
    d.write("fake.deb", "not an ar archive\n");
    CHECK_THAT(error_of("containerd:\n  containerd: " + d.path() + "/fake.deb\n  runc: " + d.path() + "/runc.arm64\n"),
               Catch::StartsWith("t.yaml:2:15: step 'containerd': '" + d.path() + "/fake.deb' is not a .deb: "));
}

TEST_CASE("read_deb reads control fields and data.tar, whatever the compression", "[package]") {
    TempDir d;
    for (const char* z : {"xz", "gzip", "zstd", "none"}) {
        INFO(z);
        std::string deb = build_deb(d, std::string("c-") + z + ".deb", control("containerd", "1:1.7.24~ds1-1"),
                                    k_containerd_deb_files, z);
        auto r = package::read_deb(deb);
        REQUIRE(r.ok());
        const auto& pkg = r.value();
        CHECK(pkg.control.package == "containerd");
        CHECK(pkg.control.version == "1:1.7.24~ds1-1");
        CHECK(pkg.control.architecture == "arm64");
        std::string got;
        for (const auto& f : pkg.files) {
            char mode[8];
            snprintf(mode, sizeof mode, "%04o", f.perm);
            got += f.path + " " + std::string(type_name(f.type)) + " " + mode + " " + std::to_string(f.uid) + ":" +
                   std::to_string(f.gid) + (f.link.empty() ? "" : " -> " + f.link) + "\n";
            if (f.path == "/usr/bin/containerd") CHECK(read_all(f.content) == elf(arch::k_aarch64, "containerd"));
        }
        CHECK(got == "/etc directory 0755 0:0\n/etc/containerd directory 0755 0:0\n"
                     "/etc/containerd/config.toml file 0644 0:0\n/lib directory 0755 0:0\n"
                     "/lib/systemd directory 0755 0:0\n/lib/systemd/system directory 0755 0:0\n"
                     "/lib/systemd/system/containerd.service file 0644 0:0\n/usr directory 0755 0:0\n"
                     "/usr/bin directory 0755 0:0\n/usr/bin/containerd file 0755 0:0\n"
                     "/usr/bin/containerd-shim-runc-v2 file 0755 0:0\n/usr/sbin directory 0755 0:0\n"
                     "/usr/sbin/containerd-link symlink 0777 0:0 -> ../bin/containerd\n");
        auto c = package::read_deb_control(deb);
        REQUIRE(c.ok());
        CHECK(c.value().version == "1:1.7.24~ds1-1");
    }
    sh("tar -C " + d.path() + " -cf " + d.path() + "/x.tar c-xz.deb.d");
    auto not_deb = package::read_deb(d.path() + "/x.tar");
    REQUIRE_FALSE(not_deb.ok());
    CHECK_THAT(not_deb.error(), Catch::StartsWith("'" + d.path() + "/x.tar' is not a .deb: "));
    auto missing = package::read_deb(d.path() + "/nope.deb");
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.error(), Catch::StartsWith("cannot open '" + d.path() + "/nope.deb': "));
}

TEST_CASE("read_release_tarball keeps types and modes; hardlinks get their target's bytes", "[package]") {
    TempDir d;
    d.write("r/bin/a", "AAAA");
    sh("cd " + d.path() +
       "/r && chmod 0750 bin/a && ln bin/a bin/b && ln -s a bin/c && tar --sort=name -cJf ../r.tar.xz bin");
    auto r = package::read_release_tarball(d.path() + "/r.tar.xz");
    REQUIRE(r.ok());
    std::string got;
    for (const auto& f : r.value())
        got += f.path + " " + std::string(type_name(f.type)) + " " + std::to_string(f.perm) + " " + f.link + " " +
               (f.content ? read_all(f.content) : "") + "\n";
    CHECK(got == "/bin directory 493  \n/bin/a file 488  AAAA\n/bin/b file 488  AAAA\n/bin/c symlink 511 a \n");
    d.write("empty.tar.gz", "plain text\n");
    auto bad = package::read_release_tarball(d.path() + "/empty.tar.gz");
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error(), Catch::StartsWith("tarball '" + d.path() + "/empty.tar.gz'"));
}

TEST_CASE("containerd from .debs: files at their own paths, the package's unit enabled", "[step][containerd]") {
    TempDir d;
    // The file name says nothing; the control Version (2.0) picks config version 3.
    std::string c = build_deb(d, "c.deb", control("containerd", "2.0.1~ds1-1"), k_containerd_deb_files);
    std::string r =
        build_deb(d, "r.deb", control("runc", "1.1.12+ds1-1"), {{"/usr/sbin/runc", elf(arch::k_aarch64, "runc")}});
    // A merged-/usr image whose architecture shows only in dpkg's status.
    Tree t;
    t.put("/lib", link("usr/lib"));
    t.put("/usr/lib/systemd/system", dir());
    t.put("/var/lib/dpkg/status", file("Package: base-files\nEssential: yes\nArchitecture: arm64\n"));
    auto step = parsed("containerd: {containerd: " + c + ", runc: " + r + ", systemd_cgroup: false}");
    step->apply(t, StepApplyEnv{k_now});

    CHECK(t.get("/lib")->type == FileType::Symlink); // the package's ./lib folder did not replace the link
    CHECK(t.get("/usr/bin/containerd")->perm == 0755);
    CHECK(read_all(t.get("/usr/bin/containerd")->content) == elf(arch::k_aarch64, "containerd"));
    CHECK(t.get("/usr/sbin/containerd-link")->link == "../bin/containerd");
    CHECK(read_all(t.get("/usr/sbin/runc")->content) == elf(arch::k_aarch64, "runc"));
    CHECK(t.get("/usr/lib/systemd/system/containerd.service")->perm == 0644);
    CHECK_FALSE(t.exists("/usr/local/lib/systemd/system/containerd.service"));
    CHECK(t.get("/etc/systemd/system/multi-user.target.wants/containerd.service")->link ==
          "/usr/lib/systemd/system/containerd.service");
    CHECK(t.read_file("/etc/containerd/config.toml") == k_config_v3); // the package's own is replaced

    Tree once = t;
    step->apply(t, StepApplyEnv{k_now});
    CHECK(listing(t) == listing(once));

    // An amd64 runc package is refused; so is a containerd package without a unit.
    std::string r64 =
        build_deb(d, "r64.deb", control("runc", "1.1.12", "amd64"), {{"/usr/sbin/runc", elf(arch::k_x86_64)}});
    Tree t2 = once;
    CHECK_THROWS_WITH(parsed("containerd: {containerd: " + c + ", runc: " + r64 + "}")->apply(t2, StepApplyEnv{k_now}),
                      "'/usr/sbin/runc' (from '" + r64 + "') is x86-64 but the image is arm64");
    std::string nounit =
        build_deb(d, "n.deb", control("containerd", "1.7.1"), {{"/usr/bin/containerd", elf(arch::k_aarch64)}});
    CHECK_THROWS_WITH(
        parsed("containerd: {containerd: " + nounit + ", runc: " + r + "}")->apply(t2, StepApplyEnv{k_now}),
        "package '" + nounit + "' ships no containerd.service");
}

TEST_CASE("architectures from ELF headers and dpkg names", "[arch]") {
    CHECK(arch::elf_machine(*make_blob(elf(0xB7))) == arch::k_aarch64);
    CHECK(arch::elf_machine(*make_blob(elf(0x28))) == arch::k_arm);
    std::string be = elf(0);
    be[5] = 2, be[18] = 0x00, be[19] = 0x16; // big-endian s390x
    CHECK(arch::elf_machine(*make_blob(be)) == 0x16);
    CHECK_FALSE(arch::elf_machine(*make_blob("#!/bin/sh\necho hello from a script\n")));
    CHECK_FALSE(arch::elf_machine(*make_blob("\x7f"
                                             "ELF")));
    CHECK(arch::machine_name(0x3E) == "x86-64");
    CHECK(arch::machine_name(0x1234) == "ELF machine 0x1234");
    CHECK(arch::machine_of_dpkg("armel") == arch::k_arm);
    CHECK_FALSE(arch::machine_of_dpkg("hurd-i386x"));
}
