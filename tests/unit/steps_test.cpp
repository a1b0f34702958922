#include "core/build.hpp"
#include "core/error.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

// Parses one step from YAML text ("hostname: {name: x}") and applies it to `tree`.



Tree debian_etc() {
    Tree t;
    t.put("/etc/hostname", file("raspberrypi\n"));
    t.put("/etc/hosts", file("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                             "ff02::1\t\tip6-allnodes\n\n127.0.1.1\t\traspberrypi\n"));
    t.put("/etc/passwd", file("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"));
    t.put("/etc/group", file("root:x:0:\nsudo:x:27:pi\npi:x:1000:\n"));
    return t;
}

} // namespace

TEST_CASE("hostname sets /etc/hostname and replaces the 127.0.1.1 line in place", "[step][hostname]") {
    Tree t = debian_etc();
    run_step("hostname: {name: worker-1, domain: cluster.lan}", t);
    CHECK(t.read_file("/etc/hostname") == "worker-1\n");
    CHECK(t.read_file("/etc/hosts") == "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                                       "ff02::1\t\tip6-allnodes\n\n127.0.1.1\tworker-1.cluster.lan worker-1\n");
    // Idempotent.
    Tree once = t;
    run_step("hostname: {name: worker-1, domain: cluster.lan}", t);
    CHECK(t.read_file("/etc/hosts") == once.read_file("/etc/hosts"));
}

TEST_CASE("hostname adds a 127.0.1.1 line after 127.0.0.1, or writes a whole hosts file", "[step][hostname]") {
    Tree t;
    t.put("/etc/hosts", file("127.0.0.1 localhost\n::1 localhost\n"));
    run_step("hostname: node", t);
    CHECK(t.read_file("/etc/hosts") == "127.0.0.1 localhost\n127.0.1.1\tnode\n::1 localhost\n");
    Tree empty;
    run_step("hostname: node", empty);
    CHECK_THAT(empty.read_file("/etc/hosts"), Catch::StartsWith("127.0.0.1\tlocalhost\n127.0.1.1\tnode\n"));
    CHECK(empty.get("/etc/hostname")->perm == 0644);
}

TEST_CASE("hostname validates the name", "[step][hostname]") {
    CHECK(error_of("hostname: Worker_1") ==
          "t.yaml:1:11: step 'hostname': 'Worker_1' is not a valid host name: it contains 'W' (only a-z, 0-9, '-' "
          "and '.' are allowed)");
    CHECK(error_of("hostname: {name: -x}") ==
          "t.yaml:1:18: step 'hostname': '-x' is not a valid host name: it has a label that starts or ends with '-'");
    CHECK(error_of("hostname: {nmae: x}") ==
          "t.yaml:1:11: step 'hostname': missing required key 'name'\n"
          "t.yaml:1:12: step 'hostname': unknown key 'nmae' (did you mean 'name'?)");
}

TEST_CASE("delete removes matches, links themselves, never what they point at", "[step][delete]") {
    Tree t = debian_etc();
    t.put("/etc/ssh/ssh_host_rsa_key", file("k"));
    t.put("/etc/ssh/ssh_host_ed25519_key", file("k"));
    t.put("/etc/ssh/sshd_config", file("c"));
    t.put("/important", file("keep me"));
    t.put("/etc/link", link("/important"));
    run_step("delete: [/etc/ssh/ssh_host_*, /etc/link]", t);
    CHECK(t.children("/etc/ssh") == std::vector<std::string>{"sshd_config"});
    CHECK_FALSE(t.exists("/etc/link"));
    CHECK(t.read_file("/important") == "keep me");
    run_step("delete: /etc/ssh/ssh_host_*", t); // nothing left to match: a no-op, not an error
    CHECK_THROWS_WITH(run_step("delete: {paths: /nope, must_exist: true}", t), Catch::Contains("'/nope' matches nothing"));
    CHECK(error_of("delete: [etc/x, /]") ==
          "t.yaml:1:10: step 'delete': 'etc/x' must be an absolute path in the image\n"
          "t.yaml:1:17: step 'delete': refusing to delete the whole image ('/')");
}

TEST_CASE("files copies a host folder as an overlay, owners from the image", "[step][files]") {
    TempDir d;
    d.write("overlay/etc/motd", "hello\n");
    d.write("overlay/usr/local/bin/tool", "#!/bin/sh\n");
    std::filesystem::permissions(d.path() + "/overlay/usr/local/bin/tool", std::filesystem::perms(0755));
    std::filesystem::create_directory_symlink("/etc", d.path() + "/overlay/etc-link");
    Tree t = debian_etc();
    Entry etc = dir(0755);
    etc.mtime = {42, 0};
    t.put("/etc", etc); // an existing folder keeps its metadata
    run_step("files: {src: " + d.path() + "/overlay, dest: /, owner: pi, group: sudo}", t);
    CHECK(t.read_file("/etc/motd") == "hello\n");
    const Entry* motd = t.get("/etc/motd");
    CHECK(motd->uid == 1000);
    CHECK(motd->gid == 27);
    CHECK(motd->mtime.sec == 1700000000);
    CHECK(t.get("/usr/local/bin/tool")->perm == 0755);
    CHECK(t.get("/etc")->mtime.sec == 42);
    REQUIRE(t.get("/etc-link"));
    CHECK(t.get("/etc-link")->type == FileType::Symlink);
    CHECK(t.get("/etc-link")->link == "/etc");
}

TEST_CASE("files writes inline content and single files", "[step][files]") {
    TempDir d;
    std::string src = d.write("motd", "hi\n");
    Tree t = debian_etc();
    run_step("files: {content: \"a=1\\n\", dest: /etc/default/x, mode: 0600}", t);
    CHECK(t.read_file("/etc/default/x") == "a=1\n");
    CHECK(t.get("/etc/default/x")->perm == 0600);
    run_step("files: {src: " + src + ", dest: /etc/}", t);
    CHECK(t.read_file("/etc/motd") == "hi\n");
    run_step("files: {src: " + src + ", dest: /etc/issue}", t);
    CHECK(t.read_file("/etc/issue") == "hi\n");
    CHECK_THROWS_WITH(run_step("files: {content: x, dest: /x, owner: nobody}", t),
                      Catch::Contains("user 'nobody' is not in the image's /etc/passwd"));
    CHECK(error_of("files: {src: a, content: b, dest: /x}") ==
          "t.yaml:1:26: step 'files': 'src', 'content' exclude each other; give one");
}
