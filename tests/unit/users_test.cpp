#include "core/error.hpp"
#include "core/passwd.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"
#include "steps/step.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

const std::string k_sha512 =
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
const std::string k_sha256 = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
const std::string k_yescrypt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0";
const std::string k_bcrypt = "$2b$10$abcdefghijklmnopqrstuuqflPDzB6gcMhKa1rZqKiun2YGL5sa2u";
const std::string k_today = "19675"; // 1700000000 / 86400




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

Entry owned(const std::string& data, uint32_t perm, uint32_t gid) {
    Entry e = file(data, perm);
    e.gid = gid;
    e.mtime = {7, 0};
    return e;
}

// The account files of a Debian 12 image, with the oddities a real one may carry: a comment, a line
// without a final newline, an odd member list.
const std::string k_passwd = "root:x:0:0:root:/root:/bin/bash\n"
                             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                             "# local accounts below\n"
                             "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
const std::string k_shadow = "root:*:19000:0:99999:7:::\n"
                             "daemon:*:19000:0:99999:7:::\n"
                             "pi:$6$old$x:19000:0:99999:7:::\n"
                             "nobody:*:19000:0:99999:7:::\n";
const std::string k_group = "root:x:0:\nadm:x:4:\nsudo:x:27:\nshadow:x:42:\npi:x:1000:\nusers:x:100:pi,,\n"
                            "nogroup:x:65534:\n";
const std::string k_gshadow = "root:*::\nadm:*::\nsudo:*::\nshadow:*::\npi:!::\nusers:*::pi\nnogroup:*::\n";

Tree debian() {
    Tree t;
    t.put("/etc/passwd", owned(k_passwd, 0644, 0));
    t.put("/etc/shadow", owned(k_shadow, 0640, 42));
    t.put("/etc/group", owned(k_group, 0644, 0));
    t.put("/etc/gshadow", owned(k_gshadow, 0640, 42));
    t.put("/etc/skel", dir());
    t.put("/etc/skel/.bashrc", file("# bashrc\n"));
    t.put("/etc/skel/.config", dir(0700));
    t.put("/etc/skel/.config/x", file("x", 0600));
    t.put("/home/pi", Entry::directory(0755, {}, 1000, 1000));
    return t;
}

Tree pios() {
    Tree t = debian();
    t.put("/boot/firmware/config.txt", file("arm_64bit=1\n"));
    t.put("/boot/firmware/issue.txt", file("Raspberry Pi reference 2024-11-19\n"));
    return t;
}

} // namespace

TEST_CASE("account tables keep every untouched byte", "[users][passwd]") {
    passwd::Table t("a:x:1:\n# c\n\nb:x:2:x,y");
    CHECK(t.text() == "a:x:1:\n# c\n\nb:x:2:x,y");
    CHECK(t.find("b") == 3u);
    CHECK_FALSE(t.find("# c"));
    CHECK(t.find_field(2, "1") == 0u);
    CHECK(t.fields(0) == std::vector<std::string>{"a", "x", "1", ""});
    t.add({"c", "x", "3", ""});
    CHECK(t.text() == "a:x:1:\n# c\n\nb:x:2:x,y\nc:x:3:\n");
    CHECK(passwd::members("x,,y") == std::vector<std::string>{"x", "y"});
    CHECK(passwd::join_members({"x", "y"}) == "x,y");
}

TEST_CASE("users adds a new user with its own group, a home from /etc/skel and a shadow line",
          "[users][step]") {
    Tree t = debian();
    std::string yaml = "users:\n  - name: alice\n    groups: [adm]\n    sudo: true\n    gecos: Alice A\n"
                       "    password_hash: \"" +
                       k_yescrypt + "\"\n";
    run_step(yaml, t);
    CHECK(t.read_file("/etc/passwd") == "root:x:0:0:root:/root:/bin/bash\n"
                                        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                        "# local accounts below\n"
                                        "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
                                        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                                        "alice:x:1001:1001:Alice A:/home/alice:/bin/bash\n");
    CHECK(t.read_file("/etc/shadow") == k_shadow + "alice:" + k_yescrypt + ":" + k_today + ":0:99999:7:::\n");
    CHECK(t.read_file("/etc/group") == "root:x:0:\nadm:x:4:alice\nsudo:x:27:alice\nshadow:x:42:\npi:x:1000:\n"
                                       "users:x:100:pi,,\nnogroup:x:65534:\nalice:x:1001:\n");
    CHECK(t.read_file("/etc/gshadow") ==
          "root:*::\nadm:*::alice\nsudo:*::alice\nshadow:*::\npi:!::\nusers:*::pi\n"
          "nogroup:*::\nalice:!::\n");
    // The files keep the image's owners and modes.
    const Entry* shadow = t.get("/etc/shadow");
    CHECK(shadow->perm == 0640);
    CHECK(shadow->gid == 42);
    CHECK(shadow->mtime.sec == 1700000000);
    const Entry* home = t.get("/home/alice");
    REQUIRE(home);
    CHECK(home->perm == 0755);
    CHECK(home->uid == 1001);
    CHECK(home->gid == 1001);
    CHECK(t.read_file("/home/alice/.bashrc") == "# bashrc\n");
    CHECK(t.get("/home/alice/.config")->perm == 0700);
    CHECK(t.get("/home/alice/.config/x")->uid == 1001);
    CHECK(t.get("/home/alice/.config/x")->perm == 0600);

    Tree once = t;
    run_step(yaml, t);
    CHECK(snapshot(t) == snapshot(once));
}

TEST_CASE("users changes an existing user and leaves other lines alone", "[users][step]") {
    Tree t = debian();
    run_step("users: [{name: pi, shell: /bin/zsh, groups: [users, sudo], password_hash: \"" + k_sha512 +
                 "\"}]",
             t);
    CHECK(t.read_file("/etc/passwd") == "root:x:0:0:root:/root:/bin/bash\n"
                                        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                        "# local accounts below\n"
                                        "pi:x:1000:1000:,,,:/home/pi:/bin/zsh\n"
                                        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin");
    CHECK(t.read_file("/etc/shadow") == "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
                                        "pi:" +
                                            k_sha512 + ":" + k_today +
                                            ":0:99999:7:::\nnobody:*:19000:0:99999:7:::\n");
    CHECK(t.read_file("/etc/group") ==
          "root:x:0:\nadm:x:4:\nsudo:x:27:pi\nshadow:x:42:\npi:x:1000:\n"
          "users:x:100:pi,,\nnogroup:x:65534:\n"); // already a member: line untouched
    CHECK(t.read_file("/etc/gshadow") ==
          "root:*::\nadm:*::\nsudo:*::pi\nshadow:*::\npi:!::\nusers:*::pi\nnogroup:*::\n");

    // Same hash again: lastchg stays, nothing is rewritten.
    Tree later = t;
    Diagnostics diag;
    auto step = parse_step("users: [{name: pi, uid: 1000, password_hash: \"" + k_sha512 + "\"}]", diag);
    step->apply(later, StepApplyEnv{{1800000000, 0}});
    CHECK(snapshot(later) == snapshot(t));
}

TEST_CASE("users picks free ids and refuses taken ones", "[users][step]") {
    Tree t = debian();
    t.put("/etc/group", owned(k_group + "taken:x:1002:\n", 0644, 0));
    // bob's uid is reserved for him, so carol skips it; carol's gid 1002 is taken, so it is the next free.
    run_step("users: [{name: carol}, {name: bob, uid: 1001, primary_group: users, home: /srv/bob, shell: "
             "/bin/sh}]",
             t);
    CHECK_THAT(t.read_file("/etc/passwd"),
               Catch::EndsWith("/usr/sbin/nologin\ncarol:x:1002:1001::/home/carol:/bin/bash\n"
                               "bob:x:1001:100::/srv/bob:/bin/sh\n"));
    CHECK_THAT(t.read_file("/etc/group"), Catch::EndsWith("taken:x:1002:\ncarol:x:1001:\n"));
    CHECK_THAT(t.read_file("/etc/shadow"),
               Catch::EndsWith("carol:!:" + k_today + ":0:99999:7:::\nbob:!:" + k_today + ":0:99999:7:::\n"));
    CHECK(t.get("/srv/bob")->uid == 1001);
    CHECK(t.get("/srv/bob")->gid == 100);

    CHECK_THROWS_WITH(run_step("users: [{name: dave, uid: 1000}]", t),
                      "uid 1000 of user 'dave' is already used by user 'pi' in the image's /etc/passwd");
    CHECK_THROWS_WITH(run_step("users: [{name: pi, uid: 1005}]", t),
                      "user 'pi' has uid 1000 in the image, not 1005; imgbuild does not change a user's uid");
    CHECK_THROWS_WITH(run_step("users: [{name: erin, groups: [docker]}]", t),
                      "group 'docker' for user 'erin' is not in the image's /etc/group");
    CHECK_THROWS_WITH(run_step("users: [{name: erin, primary_group: staff}]", t),
                      "group 'staff' of user 'erin' is not in the image's /etc/group");
    t.remove("/etc/shadow");
    CHECK_THROWS_WITH(run_step("users: [{name: erin}]", t), "the image has no /etc/shadow");
}

TEST_CASE("users checks names and hashes, and never shows a hash", "[users][step]") {
    CHECK(error_of("users: [{name: pi, password_hash: hunter2}]") ==
          "t.yaml:1:35: step 'users': password_hash of 'pi' looks like a plain password, not a crypt hash: "
          "make one "
          "with `mkpasswd -m yescrypt` or `openssl passwd -6`");
    CHECK(error_of("users: [{name: pi, password_hash: \"$6$salt$short\"}]") ==
          "t.yaml:1:35: step 'users': password_hash of 'pi' is not a well-formed SHA-512 ($6$) hash");
    CHECK(error_of("users: [{name: pi, password_hash: \"$1$salt$abcdefghijklmnopqrstuv\"}]") ==
          "t.yaml:1:35: step 'users': password_hash of 'pi' uses a scheme imgbuild does not accept ('$1$'); "
          "give a "
          "$6$, $5$, $y$ or $2b$ hash");
    for (const auto& ok :
         {k_sha512, k_sha256, k_yescrypt, k_bcrypt, "!" + k_sha512, std::string("!"), std::string("*"),
          "$6$rounds=5000$saltsalt$" + k_sha512.substr(k_sha512.rfind('$') + 1)})
        CHECK(error_of("users: [{name: pi, password_hash: \"" + ok + "\"}]") == "");
    CHECK(error_of("users: [{name: Pi, groups: [sudo, Wheel], shel: /bin/sh}, {name: x, uid: 5, home: rel},"
                   " {name: x, uid: 5}]") ==
          "t.yaml:1:16: step 'users': 'Pi' is not a valid user name: it must start with a-z or '_'\n"
          "t.yaml:1:35: step 'users': 'Wheel' is not a valid group name: it must start with a-z or '_'\n"
          "t.yaml:1:43: step 'users': unknown key 'shel' (did you mean 'shell'?)\n"
          "t.yaml:1:83: step 'users': home 'rel' must be an absolute path\n"
          "t.yaml:1:89: step 'users': user 'x' is listed twice");
    CHECK(error_of("users: [{name: a, uid: 7}, {name: b, uid: 7}, {name: c, uid: 0, gecos: \"a:b\"}]") ==
          "t.yaml:1:28: step 'users': uid 7 is given to both 'a' and 'b'\n"
          "t.yaml:1:62: step 'users': uid 0 is root's; give 'c' another uid\n"
          "t.yaml:1:72: step 'users': gecos 'a:b' contains ':' (passwd fields must not contain ':' or a line "
          "break)");
    CHECK(error_of("users: {accounts: [{name: a}], userconf: true}") ==
          "t.yaml:1:42: step 'users': 'userconf: true' needs a user with a password_hash");
    CHECK(error_of("users: {userconf: true}") == "t.yaml:1:8: step 'users': missing required key 'accounts'");
    CHECK(error_of("users: []") == "t.yaml:1:8: step 'users': the list of users is empty");

    Diagnostics diag;
    auto step = parse_step("users: [{name: pi, password_hash: \"" + k_sha512 + "\"}]", diag);
    REQUIRE(step);
    CHECK(step->describe() == "users: pi (password set)");
    CHECK(step->describe().find("saltsalt") == std::string::npos);
}

TEST_CASE("users writes userconf.txt on Raspberry Pi OS, custom.toml when asked", "[users][step]") {
    Tree t = pios();
    std::string yaml =
        "users: {accounts: [{name: alice, password_hash: \"!\"}, {name: pi, password_hash: \"" + k_sha512 +
        "\"}], custom_toml: true}";
    run_step(yaml, t);
    CHECK(t.read_file("/boot/firmware/userconf.txt") == "pi:" + k_sha512 + "\n");
    CHECK(t.read_file("/boot/firmware/custom.toml") ==
          "# Raspberry Pi OS first-boot settings, read by init_config.\nconfig_version = 1\n\n[user]\nname = "
          "\"pi\"\n"
          "password = \"" +
              k_sha512 + "\"\npassword_encrypted = true\n");
    Tree once = t;
    run_step(yaml, t);
    CHECK(snapshot(t) == snapshot(once));

    // An existing custom.toml keeps its other sections; its [user] section is replaced.
    t.put("/boot/firmware/custom.toml",
          file("config_version = 1\n\n[user]\nname = \"x\"\n\n[ssh]\nenabled = true\n"));
    run_step(yaml, t);
    CHECK(t.read_file("/boot/firmware/custom.toml") ==
          "config_version = 1\n\n[user]\nname = \"pi\"\npassword = \"" + k_sha512 +
              "\"\npassword_encrypted = true\n\n[ssh]\nenabled = true\n");

    Tree off = pios();
    run_step("users: {accounts: [{name: pi, password_hash: \"" + k_sha512 + "\"}], userconf: false}", off);
    CHECK_FALSE(off.exists("/boot/firmware/userconf.txt"));

    Tree deb = debian();
    run_step("users: [{name: pi, password_hash: \"" + k_sha512 + "\"}]", deb);
    CHECK_FALSE(deb.exists("/boot/userconf.txt"));
    CHECK_THROWS_WITH(
        run_step("users: {accounts: [{name: pi, password_hash: \"" + k_sha512 + "\"}], userconf: true}", deb),
        Catch::StartsWith("'userconf: true' needs a Raspberry Pi boot partition"));
}
