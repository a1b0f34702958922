#include "core/error.hpp"
#include "core/openssh.hpp"
#include "core/units.hpp"
#include "ext/sshkey.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"
#include "steps/step.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <sys/wait.h>

using namespace ib;
using namespace ib::test;

namespace {

const std::string k_ed =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+gHceS3PH/eo2km8HMbGf+E6P0qRcPhus0L8MbkJid me@laptop";
const std::string k_ecdsa =
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFGHwpq+LAVPdMq3P"
    "NfypZBJI/2bOVY/MfIdLD5bzFOymgZ47RCX1GU9jKd82k8CwYGEx3fSetx65KeI/jaGBKM= ops";




// Everything about a tree that a step could change: paths, types, modes, owners, mtimes, contents.
std::string snapshot(const Tree& tree) {
    std::string s;
    tree.walk([&](const std::string& p, const Entry& e) {
        char meta[96];
        snprintf(meta, sizeof meta, " %s %04o %u:%u %lld ", std::string(type_name(e.type)).c_str(), e.perm,
                 e.uid, e.gid, static_cast<long long>(e.mtime.sec));
        s += p + meta + (e.type == FileType::Regular ? read_all(e.content) : e.link) + "\n";
    });
    return s;
}

Entry unit_file(const std::string& text) {
    return file(text);
}

const char* const k_ssh_service = "[Unit]\nDescription=OpenBSD Secure Shell server\n\n[Service]\n"
                                  "ExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n\n"
                                  "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n";

// A Debian 12 root: accounts, openssh-server's unit and config with the sshd_config.d include.
Tree debian() {
    Tree t;
    t.put("/etc/passwd", file("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"));
    t.put("/etc/group", file("root:x:0:\npi:x:1000:\n"));
    t.put("/etc/hostname", file("node1\n"));
    t.put("/home/pi", Entry::directory(0755, {}, 1000, 1000));
    t.put("/root", dir(0700));
    t.put("/lib/systemd/system/ssh.service", unit_file(k_ssh_service));
    t.put("/etc/ssh/sshd_config",
          file("Include /etc/ssh/sshd_config.d/*.conf\n\n#PermitRootLogin prohibit-password\n"
               "KbdInteractiveAuthentication no\nUsePAM yes\n"));
    t.put("/etc/ssh/sshd_config.d", dir());
    for (const char* k : {"rsa", "ecdsa", "ed25519"}) {
        t.put(std::string("/etc/ssh/ssh_host_") + k + "_key", file("private", 0600));
        t.put(std::string("/etc/ssh/ssh_host_") + k + "_key.pub", file("public"));
    }
    return t;
}

// Raspberry Pi OS: the same, with a boot partition and its own host key service.
Tree pios() {
    Tree t = debian();
    t.put("/boot/firmware/config.txt", file("arm_64bit=1\n"));
    t.put("/lib/systemd/system/regenerate_ssh_host_keys.service",
          unit_file(
              "[Unit]\nBefore=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A -v\n\n"
              "[Install]\nWantedBy=multi-user.target\n"));
    return t;
}

// Runs a shell command, returning its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run(const std::string& command) {
    std::string out;
    FILE* p = popen((command + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p))
        out.append(buf, n);
    int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool have_tool(const std::string& name) {
    return run("command -v " + name).first == 0;
}

std::string blob_with_type(const std::string& type) {
    std::string b;
    openssh::put_string(b, type);
    openssh::put_string(b, std::string(32, 'k'));
    return openssh::base64_encode(b);
}

} // namespace

TEST_CASE("base64 round-trips and rejects what is not canonical", "[ssh][openssh]") {
    for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"})
        CHECK(openssh::base64_decode(openssh::base64_encode(s)) == s);
    CHECK(openssh::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(openssh::base64_encode("fo") == "Zm8=");
    CHECK_FALSE(openssh::base64_decode("Zm9")); // not a multiple of 4
    CHECK_FALSE(openssh::base64_decode("Zm9v!A=="));
    CHECK_FALSE(openssh::base64_decode("Zm=v")); // data after padding
    CHECK_FALSE(openssh::base64_decode("Zm9=")); // unused bits set ("Zm8=" is canonical)
    CHECK_FALSE(openssh::base64_decode("Z==="));
}

TEST_CASE("public key lines are parsed with options and comments", "[ssh][openssh]") {
    auto k = openssh::parse_public_key("command=\"echo a b\",no-pty " + k_ed);
    REQUIRE(k.key);
    CHECK(k.key->options == "command=\"echo a b\",no-pty");
    CHECK(k.key->type == "ssh-ed25519");
    CHECK(k.key->comment == "me@laptop");
    CHECK(k.key->blob.size() == 51);
    CHECK(openssh::parse_public_key(k_ecdsa).key);
    CHECK(openssh::parse_public_key("ssh-dss AAAA").error == "unknown key type 'ssh-dss'");
    CHECK(openssh::parse_public_key("from=\"x\" ssh-dss AAAA").error == "unknown key type 'ssh-dss'");
    CHECK(openssh::parse_public_key("ssh-ed25519").error == "has no key data after 'ssh-ed25519'");
    CHECK(openssh::parse_public_key("command=\"x ssh-ed25519 AAAA").error ==
          "has an unterminated '\"' in its options");
    CHECK(openssh::parse_public_key("ssh-rsa AAAA").error == "the key data is too short to name its type");
    CHECK(openssh::parse_public_key("ssh-rsa " + blob_with_type("ssh-rsa")).key);
}

TEST_CASE("ssh checks every key and option when the recipe is read", "[ssh][step]") {
    TempDir d;
    std::string pub = d.write("keys/me.pub", "# mine\n\n" + k_ed + "\nssh-ed25519 AAAA!\n");
    CHECK(error_of("ssh:\n  authorized_keys:\n    pi: [\"" + k_ed + "\", \"ssh-ed25519 " +
                   blob_with_type("ssh-rsa") + " x\"]\n") ==
          "t.yaml:3:104: step 'ssh': key 2 for 'pi': type 'ssh-ed25519' does not match the key data's "
          "'ssh-rsa'");
    CHECK(error_of("ssh: {authorized_keys: {pi: hunter2, Bob: [x]}}") ==
          "t.yaml:1:29: step 'ssh': key 1 for 'pi': unknown key type 'hunter2'\n"
          "t.yaml:1:38: step 'ssh': 'authorized_keys': 'Bob' is not a valid user name: it must start with "
          "a-z or '_'");
    CHECK(error_of("ssh: {key_files: {pi: [" + pub + ", " + d.path() + "/none.pub]}}") ==
          "t.yaml:1:24: step 'ssh': key on line 4 of '" + pub +
              "' for 'pi': the key data after 'ssh-ed25519' is not valid base64\n"
              "t.yaml:1:" +
              std::to_string(26 + pub.size()) + ": step 'ssh': cannot read key file '" + d.path() +
              "/none.pub': No such file or directory");
    CHECK(
        error_of("ssh: {permit_root_login: maybe, host_keys: fresh, seed: x, pasword_authentication: no}") ==
        "t.yaml:1:26: step 'ssh': permit_root_login must be yes, no, prohibit-password or "
        "forced-commands-only, found "
        "'maybe'\n"
        "t.yaml:1:44: step 'ssh': host_keys must be keep, regenerate or generate, found 'fresh'\n"
        "t.yaml:1:57: step 'ssh': 'seed' is only used with 'host_keys: generate'\n"
        "t.yaml:1:60: step 'ssh': unknown key 'pasword_authentication' (did you mean "
        "'password_authentication'?)");
    CHECK(error_of("ssh: {enable: perhaps}") ==
          "t.yaml:1:15: step 'ssh': 'enable' must be true or false, found 'perhaps'");
    CHECK(error_of("ssh:") == "");
}

TEST_CASE("ssh on Raspberry Pi OS writes the boot flag and enables ssh.service", "[ssh][step]") {
    Tree t = pios();
    run_step("ssh: {}", t);
    REQUIRE(t.get("/boot/firmware/ssh"));
    CHECK(t.get("/boot/firmware/ssh")->size() == 0);
    CHECK(t.get("/boot/firmware/ssh")->mtime.sec == 1700000000);
    CHECK(units::is_enabled(t, "ssh.service"));
    CHECK(t.get("/etc/systemd/system/sshd.service")->link == "/lib/systemd/system/ssh.service");
    Tree once = t;
    run_step("ssh: {}", t);
    CHECK(snapshot(t) == snapshot(once));

    run_step("ssh: {enable: false}", t);
    CHECK_FALSE(t.exists("/boot/firmware/ssh"));
    CHECK_FALSE(units::is_enabled(t, "ssh.service"));
    CHECK_FALSE(t.exists("/etc/systemd/system/sshd.service"));
}

TEST_CASE("ssh on Debian needs openssh-server's unit", "[ssh][step]") {
    Tree t = debian();
    run_step("ssh: {enable: true}", t);
    CHECK(units::is_enabled(t, "ssh.service"));
    CHECK_FALSE(t.exists("/boot/ssh"));
    t.remove("/lib/systemd/system/ssh.service");
    CHECK_THROWS_WITH(run_step("ssh: {}", t),
                      "the image has no ssh.service: install openssh-server in the base image, "
                      "or give 'enable: false'");
}

TEST_CASE("ssh merges authorized keys, owned by the user, without duplicates", "[ssh][step]") {
    TempDir d;
    std::string pub = d.write("me.pub", k_ed + "\n");
    Tree t = debian();
    t.put("/home/pi/.ssh", Entry::directory(0775, {5, 0}, 0, 0)); // too open, wrong owner: fixed
    t.put("/home/pi/.ssh/authorized_keys", file("# old\n" + k_ecdsa + "\n", 0644));
    std::string yaml = "ssh:\n  authorized_keys: {pi: [\"" + k_ed + "\", \"  " + k_ecdsa + "\"], root: \"" +
                       k_ecdsa + "\"}\n  key_files: {pi: " + pub + "}\n";
    run_step(yaml, t);
    const Entry* dot = t.get("/home/pi/.ssh");
    CHECK(dot->perm == 0700);
    CHECK(dot->uid == 1000);
    CHECK(dot->gid == 1000);
    const Entry* ak = t.get("/home/pi/.ssh/authorized_keys");
    CHECK(ak->perm == 0600);
    CHECK(ak->uid == 1000);
    CHECK(t.read_file("/home/pi/.ssh/authorized_keys") == "# old\n" + k_ecdsa + "\n" + k_ed + "\n");
    CHECK(t.read_file("/root/.ssh/authorized_keys") == k_ecdsa + "\n");
    CHECK(t.get("/root/.ssh")->uid == 0);
    CHECK(t.get("/root/.ssh")->perm == 0700);

    Tree once = t;
    run_step(yaml, t);
    CHECK(snapshot(t) == snapshot(once));

    CHECK_THROWS_WITH(run_step("ssh: {enable: false, authorized_keys: {bob: \"" + k_ed + "\"}}", t),
                      "user 'bob' is not in the image's /etc/passwd (add it with a 'users' step first)");
    t.remove("/home/pi");
    CHECK_THROWS_WITH(run_step("ssh: {enable: false, authorized_keys: {pi: \"" + k_ed + "\"}}", t),
                      "home folder '/home/pi' of user 'pi' is not a folder in the image");
}

TEST_CASE("ssh writes sshd options to a drop-in when sshd_config includes them", "[ssh][step]") {
    Tree t = debian();
    std::string config = t.read_file("/etc/ssh/sshd_config");
    run_step("ssh: {password_authentication: false, permit_root_login: prohibit-password}", t);
    CHECK(t.read_file("/etc/ssh/sshd_config.d/10-imgbuild.conf") ==
          "# Written by imgbuild's ssh step. sshd uses the first value it reads for each keyword.\n"
          "PasswordAuthentication no\nPermitRootLogin prohibit-password\n");
    CHECK(t.get("/etc/ssh/sshd_config.d/10-imgbuild.conf")->perm == 0644);
    CHECK(t.read_file("/etc/ssh/sshd_config") == config);
    Tree once = t;
    run_step("ssh: {password_authentication: false, permit_root_login: prohibit-password}", t);
    CHECK(snapshot(t) == snapshot(once));
}

TEST_CASE("ssh edits sshd_config itself when it has no include", "[ssh][step]") {
    Tree t = debian();
    Entry config = file("# old style\n#PermitRootLogin yes\nPort 22\npasswordauthentication=yes\n"
                        "Match User guest\n    PasswordAuthentication yes\n",
                        0640);
    t.put("/etc/ssh/sshd_config", config);
    run_step("ssh: {password_authentication: no, permit_root_login: no}", t);
    CHECK(t.read_file("/etc/ssh/sshd_config") ==
          "# old style\n#PermitRootLogin yes\nPermitRootLogin no\nPort 22\n"
          "PasswordAuthentication no\nMatch User guest\n"
          "    PasswordAuthentication yes\n");
    CHECK(t.get("/etc/ssh/sshd_config")->perm == 0640);
    CHECK_FALSE(t.exists("/etc/ssh/sshd_config.d/10-imgbuild.conf"));
    Tree once = t;
    run_step("ssh: {password_authentication: no, permit_root_login: no}", t);
    CHECK(snapshot(t) == snapshot(once));

    // Nothing to replace and no commented default: the line goes before the first Match block.
    t.put("/etc/ssh/sshd_config", file("Port 22\nMatch all\n  X11Forwarding no\n"));
    run_step("ssh: {permit_root_login: forced-commands-only}", t);
    CHECK(t.read_file("/etc/ssh/sshd_config") == "Port 22\nPermitRootLogin forced-commands-only\nMatch all\n"
                                                 "  X11Forwarding no\n");
    t.remove("/etc/ssh/sshd_config");
    CHECK_THROWS_WITH(
        run_step("ssh: {permit_root_login: no}", t),
        "the image has no /etc/ssh/sshd_config to set PermitRootLogin in: install openssh-server in the "
        "base image");
}

TEST_CASE("ssh host_keys: regenerate deletes the keys and makes them again at first boot", "[ssh][step]") {
    Tree t = debian();
    run_step("ssh: {host_keys: regenerate}", t);
    CHECK(t.glob("/etc/ssh/ssh_host_*").empty());
    std::string unit = t.read_file("/etc/systemd/system/imgbuild-ssh-keygen.service");
    CHECK_THAT(unit, Catch::Contains("Before=ssh.service\n") &&
                         Catch::Contains("ExecStart=/usr/bin/ssh-keygen -A\n") &&
                         Catch::Contains("ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n"));
    CHECK(units::is_enabled(t, "imgbuild-ssh-keygen.service"));
    Tree once = t;
    run_step("ssh: {host_keys: regenerate}", t);
    CHECK(snapshot(t) == snapshot(once));

    // ci/deps.sh installs systemd: without systemd-analyze the unit would go unverified.
    if (!have_tool("systemd-analyze")) FAIL("systemd-analyze is missing: install systemd (ci/deps.sh does)");
    {
        TempDir d;
        std::string p = d.write("imgbuild-ssh-keygen.service", unit);
        auto [status, out] = run("systemd-analyze verify " + p);
        CHECK(status == 0);
        CHECK(out == "");
    }

    Tree pi = pios();
    run_step("ssh: {host_keys: regenerate}", pi);
    CHECK(pi.glob("/etc/ssh/ssh_host_*").empty());
    CHECK(units::is_enabled(pi, "regenerate_ssh_host_keys.service"));
    CHECK_FALSE(pi.exists("/etc/systemd/system/imgbuild-ssh-keygen.service"));
}

TEST_CASE("Ed25519 keys come from the seed as RFC 8032 says", "[ssh][sshkey]") {
    auto unhex = [](const std::string& h) {
        std::string out;
        for (size_t i = 0; i < h.size(); i += 2)
            out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
        return out;
    };
    // RFC 8032 section 7.1, test 1.
    auto pair =
        ed25519_key_pair(unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), "t");
    REQUIRE(pair.ok());
    std::string blob;
    openssh::put_string(blob, "ssh-ed25519");
    openssh::put_string(blob, unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
    CHECK(pair.value().public_line == "ssh-ed25519 " + openssh::base64_encode(blob) + " t\n");
    CHECK_THAT(
        pair.value().private_file,
        Catch::StartsWith("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"));
    CHECK(ed25519_key_pair("short", "t").error() == "an Ed25519 seed must be 32 bytes, not 5");
}

TEST_CASE("ssh host_keys: generate keeps cloud-init from replacing the key at first boot", "[ssh][step]") {
    const std::string cfg = "/etc/cloud/cloud.cfg.d/99-imgbuild-ssh-host-keys.cfg";
    Tree t = debian();
    t.put("/etc/cloud/cloud.cfg", file("cloud_init_modules: [ssh]\n"));
    run_step("ssh: {host_keys: generate, seed: s3cret}", t);
    CHECK(t.read_file(cfg) == "# Written by imgbuild's ssh step (host_keys: generate): /etc/ssh holds the host key "
                              "made for this\n# machine at build time, so cloud-init neither deletes it nor makes "
                              "others at first boot.\nssh_deletekeys: false\nssh_genkeytypes: []\n");
    CHECK(t.get(cfg)->perm == 0644);
    CHECK(t.get(cfg)->uid == 0);
    CHECK(t.get(cfg)->mtime.sec == k_step_now.sec);
    CHECK(t.get("/etc/cloud/cloud.cfg.d")->perm == 0755);
    Tree once = t;
    run_step("ssh: {host_keys: generate, seed: s3cret}", t);
    CHECK(snapshot(t) == snapshot(once));

    // Found by its program too; and the other policies leave cloud-init's key handling alone.
    Tree by_program = debian();
    by_program.put("/usr/bin/cloud-init", file("#!/usr/bin/python3\n", 0755));
    run_step("ssh: {host_keys: generate, seed: s3cret}", by_program);
    CHECK(by_program.exists(cfg));
    for (const char* policy : {"keep", "regenerate"}) {
        INFO(policy);
        Tree other = debian();
        other.put("/etc/cloud/cloud.cfg", file("cloud_init_modules: [ssh]\n"));
        run_step(std::string("ssh: {host_keys: ") + policy + "}", other);
        CHECK_FALSE(other.exists(cfg));
    }
}

TEST_CASE("ssh host_keys: generate writes one Ed25519 key per seed and hostname", "[ssh][step]") {
    Tree a = pios();
    units::enable(a, "regenerate_ssh_host_keys.service");
    Tree b = a;
    run_step("ssh: {host_keys: generate, seed: s3cret}", a);
    CHECK(a.children("/etc/ssh") == std::vector<std::string>{"ssh_host_ed25519_key",
                                                             "ssh_host_ed25519_key.pub", "sshd_config",
                                                             "sshd_config.d"});
    const Entry* key = a.get("/etc/ssh/ssh_host_ed25519_key");
    CHECK(key->perm == 0600);
    CHECK(key->uid == 0);
    CHECK(a.get("/etc/ssh/ssh_host_ed25519_key.pub")->perm == 0644);
    CHECK_FALSE(units::is_enabled(a, "regenerate_ssh_host_keys.service"));
    std::string pub = a.read_file("/etc/ssh/ssh_host_ed25519_key.pub");
    CHECK_THAT(pub, Catch::StartsWith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") &&
                        Catch::EndsWith(" root@node1\n"));

    Tree once = a;
    run_step("ssh: {host_keys: generate, seed: s3cret}", a);
    CHECK(snapshot(a) == snapshot(once)); // reproducible

    run_step("ssh: {host_keys: generate, seed: other}", b);
    CHECK(b.read_file("/etc/ssh/ssh_host_ed25519_key.pub") != pub);
    Tree c = pios();
    c.put("/etc/hostname", file("node2\n"));
    run_step("ssh: {host_keys: generate, seed: s3cret}", c);
    CHECK(c.read_file("/etc/ssh/ssh_host_ed25519_key.pub") != pub);

    // No cloud-init in these images: nothing written for it, and no /etc/cloud.
    CHECK_FALSE(a.exists("/etc/cloud"));

    if (!have_tool("ssh-keygen")) {
        WARN("ssh-keygen is not installed (apt-get install openssh-client): the key files are not checked "
             "with it");
        return;
    }
    TempDir d;
    std::string priv = d.write("key", a.read_file("/etc/ssh/ssh_host_ed25519_key"));
    std::filesystem::permissions(priv, std::filesystem::perms(0600));
    std::string pub_file = d.write("key.pub", pub);
    auto [status, derived] = run("ssh-keygen -y -f " + priv);
    CHECK(status == 0);
    // ssh-keygen -y prints the key with its comment, as stored in the private key file.
    CHECK(derived == pub);
    auto [lstatus, fingerprint] = run("ssh-keygen -l -f " + pub_file);
    CHECK(lstatus == 0);
    CHECK_THAT(fingerprint, Catch::StartsWith("256 SHA256:") && Catch::EndsWith(" root@node1 (ED25519)\n"));
}
