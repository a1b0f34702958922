#include "core/build.hpp"
#include "core/error.hpp"
#include "core/template.hpp"
#include "helpers.hpp"
#include "plan_errors.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

using namespace ib;
using namespace ib::test;

namespace {


Plan plan_of(const TempDir& dir, const std::string& name, const Overrides& overrides = {}) {
    std::string cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    try {
        Plan p = make_plan(name, overrides);
        std::filesystem::current_path(cwd);
        return p;
    } catch (...) {
        std::filesystem::current_path(cwd);
        throw;
    }
}

} // namespace

TEST_CASE("every recipe mistake is reported at once, with file:line:col", "[recipe]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", R"(base: {dir: base}
stesp: []
vars:
  domain: lan
nodes:
  - {name: w1, mac: "b8:27:eb:00:00:01"}
  - {name: w2, mac: "b8:27:eb:zz:00:01"}
  - {name: Bad_Name}
steps:
  - hostnam: w1
  - files: {content: "x", dest: etc/x, mode: 0999}
  - hostname: {name: "{{node.name}}", domain: "{{domian}}"}
outputs:
  - tar: {path: ../escape.tar}
  - zip: {path: x.zip}
)");
    CHECK(errors_of(d, "r.yaml") ==
          "r.yaml:2:1: recipe: unknown key 'stesp' (did you mean 'steps'?)\n"
          "r.yaml:7:21: node 'w2': mac 'b8:27:eb:zz:00:01' contains 'z', not a hex digit\n"
          "r.yaml:8:12: node 'Bad_Name': name 'Bad_Name' contains 'B' (only a-z, 0-9, '-' and '.' are allowed)\n"
          "r.yaml:10:5: unknown step type 'hostnam' (did you mean 'hostname'?)\n"
          "r.yaml:11:33: step 'files': dest 'etc/x' must be an absolute path in the image\n"
          "r.yaml:11:46: step 'files': 'mode' must be an octal mode such as 0644, found '0999'\n"
          "r.yaml:12:47: template '{{domian}}': unknown variable 'domian' (did you mean 'domain'?)\n"
          "r.yaml:14:17: output 'tar': path '../escape.tar' must stay inside the output folder (no '..')\n"
          "r.yaml:15:5: unknown output type 'zip' (did you mean 'dir'?)");
}

TEST_CASE("wrong types and missing keys", "[recipe]") {
    TempDir d;
    d.write("r.yaml", R"(base: {}
nodes: {a: 1}
steps:
  - files: {src: nowhere, dest: /x}
  - delete: {paths: [], must_exist: maybe}
outputs: {}
)");
    CHECK(errors_of(d, "r.yaml") ==
          "r.yaml:1:7: base: needs one of 'image', 'tarball', 'dir'\n"
          "r.yaml:2:8: recipe: 'nodes' must be a list of nodes, found a map\n"
          "r.yaml:4:18: step 'files': src 'nowhere': No such file or directory\n"
          "r.yaml:5:13: step 'delete': needs at least one path\n"
          "r.yaml:5:37: step 'delete': 'must_exist' must be true or false, found 'maybe'\n"
          "r.yaml:6:10: recipe: 'outputs' must be a list, found a map");
}

TEST_CASE("YAML syntax errors and missing files name the place", "[recipe]") {
    TempDir d;
    d.write("bad.yaml", "base: {dir: .}\nsteps: [\n");
    CHECK_THAT(errors_of(d, "bad.yaml"), Catch::StartsWith("bad.yaml:3:1: YAML syntax:"));
    CHECK_THAT(errors_of(d, "missing.yaml"), Catch::Contains("cannot read recipe 'missing.yaml': No such file"));
    d.write("dup.yaml", "base: {dir: .}\nbase: {dir: .}\noutputs: [{tar: {path: a.tar}}]\n");
    CHECK(errors_of(d, "dup.yaml") == "dup.yaml:2:1: duplicate key 'base'");
}

TEST_CASE("extends: steps append, vars merge, other keys replace; paths stay relative to their file", "[recipe]") {
    TempDir d;
    d.write("common/files/motd", "hi\n");
    d.write("base/etc/hostname", "x\n");
    d.write("common/common.yaml", R"(vars: {domain: lan, role: any}
base: {dir: ../base}
steps:
  - files: {src: files/motd, dest: /etc/motd}
outputs:
  - tar: {path: common.tar}
)");
    d.write("worker.yaml", R"(extends: common/common.yaml
vars: {role: worker}
nodes: [{name: w1}, {name: w2}]
steps:
  - hostname: {name: "{{node.name}}", domain: "{{domain}}"}
outputs:
  - tar: {path: "{{role}}-{{node.name}}.tar"}
)");
    Plan p = plan_of(d, "worker.yaml");
    REQUIRE(p.steps.size() == 2);
    CHECK(p.steps[0].mark.str() == "common/common.yaml:4:5");
    CHECK(p.steps[0].shared->describe() == "copy common/files/motd to /etc/motd");
    CHECK(p.steps[1].per_node);
    CHECK(p.steps[1].nodes[1]->describe() == "set hostname to 'w2' in domain 'lan'");
    CHECK(p.shared_prefix == 1);
    REQUIRE(p.outputs.size() == 1);
    CHECK(p.outputs[0].nodes[0]->path() == "worker-w1.tar");
    CHECK(p.recipe.vars.at("domain") == "lan");
}

TEST_CASE("extends refuses cycles", "[recipe]") {
    TempDir d;
    d.write("a.yaml", "extends: b.yaml\n");
    d.write("b.yaml", "extends: a.yaml\n");
    CHECK_THAT(errors_of(d, "a.yaml"), Catch::Contains("b.yaml:1:10: recipe 'a.yaml' extends itself"));
}

TEST_CASE("vars may use vars, and --set overrides them", "[recipe][template]") {
    TempDir d;
    d.write("base/x", "");
    d.write("r.yaml", R"(vars: {domain: lan, fqdn: "node.{{domain}}"}
base: {dir: base}
outputs: [{tar: {path: "{{fqdn}}.tar"}}]
)");
    CHECK(plan_of(d, "r.yaml").outputs[0].shared->path() == "node.lan.tar");
    CHECK(plan_of(d, "r.yaml", {{"domain", "lab"}}).outputs[0].shared->path() == "node.lab.tar");
    d.write("loop.yaml", R"(vars: {a: "{{b}}", b: "{{a}}"}
base: {dir: base}
outputs: [{tar: {path: x.tar}}]
)");
    CHECK_THAT(errors_of(d, "loop.yaml"), Catch::Contains("refers to itself"));
}

TEST_CASE("node fields need nodes; outputs per node need distinct paths", "[recipe]") {
    TempDir d;
    d.write("base/x", "");
    d.write("r.yaml", R"(base: {dir: base}
steps:
  - hostname: "{{node.name}}"
outputs: [{tar: {path: x.tar}}]
)");
    CHECK(errors_of(d, "r.yaml") == "r.yaml:3:15: template '{{node.name}}' needs a node, but the recipe lists no nodes");
    d.write("s.yaml", R"(base: {dir: base}
nodes: [{name: a, ip: 10.0.0.1/24}, {name: b, ip: 10.0.0.1/24}]
outputs:
  - tar: {path: "x-{{node.ip}}.tar"}
  - tar: {path: "y.tar"}
  - dir: {path: "y.tar"}
)");
    CHECK(errors_of(d, "s.yaml") ==
          "s.yaml:2:51: node 'b': ip '10.0.0.1/24' is already used by node 'a'\n"
          "s.yaml:6:5: output 'dir': path 'y.tar' is already written by the output at s.yaml:5:5");
}

TEST_CASE("templates", "[template]") {
    Diagnostics diag;
    std::map<std::string, std::string> vars{{"domain", "lan"}}, node{{"name", "w1"}, {"ip", "10.0.0.1"}};
    Scope scope{&vars, &node, ""};
    CHECK(render("{{node.name}}.{{ domain }}", scope, diag, {}) == "w1.lan");
    CHECK(render("literal {{ '{{' }} braces }}", scope, diag, {}) == "literal {{ braces }}");
    CHECK_FALSE(render("{{node.nmae}}", scope, diag, {}));
    CHECK_FALSE(render("{{ unclosed", scope, diag, {}));
    CHECK_FALSE(render("{{ a b }}", scope, diag, {}));
    CHECK(diag.error_count() == 3);
    CHECK_THROWS_WITH(diag.checkpoint(), Catch::Contains("node has no field 'nmae' (did you mean 'node.name'?)"));
    CHECK(uses_node("x {{ node.ip }}"));
    CHECK_FALSE(uses_node("x {{ ip }}"));
}

TEST_CASE("did you mean", "[diag]") {
    CHECK(closest("stesp", {"steps", "nodes", "vars"}) == "steps");
    CHECK(closest("zzzzzz", {"steps", "nodes"}).empty());
}

namespace {

std::string check_errors(const TempDir& dir, const std::string& name, const OutputChecks& checks) {
    std::string cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    std::string out;
    try {
        make_plan(name, {}, {}, &checks);
    } catch (const Error& e) {
        CHECK(e.exit_code() == k_exit_usage);
        out = e.what();
    }
    std::filesystem::current_path(cwd);
    return out;
}

} // namespace

TEST_CASE("outputs may not lie inside one another, nor over SHA256SUMS", "[recipe]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", R"(base: {dir: base}
nodes: [{name: a, mac: "dc:a6:32:00:00:01"}, {name: b, mac: "dc:a6:32:00:00:02"}]
outputs:
  - dir: {path: r}
  - tar: {path: r/a.tar}
  - tar: {path: x.tar}
  - tar: {path: x.tar/y.tar}
  - dir: {path: "nfs/{{node.name}}"}
  - netboot: {server: 10.0.0.1}
  - sdimage: {path: n.img, bmap: true}
  - dir: {path: n.img.bmap}
  - dir: {path: SHA256SUMS}
  - dir: {path: "per/{{node.name}}"}
  - dir: {path: "per"}
)");
    CHECK(errors_of(d, "r.yaml") ==
          "r.yaml:5:5: output 'tar': path 'r/a.tar' lies inside 'r', which the output at r.yaml:4:5 writes; outputs may not lie inside one another: give each its own path\n"
          "r.yaml:7:5: output 'tar': path 'x.tar/y.tar' lies inside 'x.tar', which the output at r.yaml:6:5 writes; outputs may not lie inside one another: give each its own path\n"
          "r.yaml:9:5: output 'netboot': path 'nfs' holds 'nfs/a', which the output at r.yaml:8:5 writes; outputs may not lie inside one another: give each its own path\n"
          "r.yaml:11:5: output 'dir': path 'n.img.bmap' is already written by the output at r.yaml:10:5\n"
          "r.yaml:12:5: output 'dir': path 'SHA256SUMS' is where imgbuild keeps its own 'SHA256SUMS' in the output folder; choose another path\n"
          "r.yaml:14:5: output 'dir': path 'per' holds 'per/a', which the output at r.yaml:13:5 writes; outputs may not lie inside one another: give each its own path");
}

TEST_CASE("what an output would replace must be what imgbuild wrote there, unless --force", "[recipe]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", R"(base: {dir: base}
outputs:
  - tar: {path: backup.tar}
  - dir: {path: root}
)");
    OutputChecks checks;
    checks.out_dir = "out";
    CHECK(check_errors(d, "r.yaml", checks).empty()); // no output folder yet
    std::filesystem::create_directories(d.path() + "/out/backup.tar/mine");
    d.write("out/root", "a file of the user's\n");
    d.write("out/SHA256SUMS", "someone else's\n");
    CHECK(check_errors(d, "r.yaml", checks) ==
          "output folder: 'out/SHA256SUMS' exists (a file) and was not written there by imgbuild in an earlier build; "
          "imgbuild replaces only what it wrote: move it away, or pass --force to replace it\n"
          "r.yaml:3:5: output 'tar': 'out/backup.tar' exists (a folder) and was not written there by this output in an earlier build; "
          "imgbuild replaces only what it wrote: move it away, or pass --force to replace it\n"
          "r.yaml:4:5: output 'dir': 'out/root' exists (a file) and was not written there by this output in an earlier build; "
          "imgbuild replaces or updates only what it wrote: move it away, or pass --force to replace it");
    checks.force = true;
    CHECK(check_errors(d, "r.yaml", checks).empty());
    checks.force = false;

    SECTION("recorded as this output's, with the same inode: fine; another output type's, or another inode: not") {
        std::filesystem::remove_all(d.path() + "/out");
        d.write("out/backup.tar", "tar\n");
        std::filesystem::create_directories(d.path() + "/out/root");
        d.write("out/SHA256SUMS", "sums\n");
        // Identities as stat(1) shows them: inode, birth time; a file's size and mtime too.
        auto id = [&](const char* p) {
            std::string cmd = "cd " + d.path() + "/out && stat -c '%i %.9W %s %.9Y %F' " + p + " | tr -d . | "
                              "awk '{ print $1 \".\" $2 ($5 == \"directory\" ? \"\" : \".\" $3 \".\" $4) }' > " + d.path() + "/id";
            REQUIRE(std::system(cmd.c_str()) == 0);
            std::ifstream in(d.path() + "/id");
            std::string s;
            in >> s;
            return s;
        };
        d.write("out/.imgbuild-outputs", "# comment\ntar file " + id("backup.tar") + " backup.tar\nnetboot dir " + id("root") +
                                              " root\nchecksums file " + id("SHA256SUMS") + " SHA256SUMS\n");
        CHECK(check_errors(d, "r.yaml", checks) ==
              "r.yaml:4:5: output 'dir': 'out/root' exists (a folder) and was not written there by this output in an earlier build; "
              "imgbuild replaces or updates only what it wrote: move it away, or pass --force to replace it");
        std::filesystem::remove(d.path() + "/out/backup.tar");
        d.write("out/backup.tar", "tar\n"); // the same bytes, but not the file imgbuild wrote
        std::filesystem::remove_all(d.path() + "/out/root");
        CHECK_THAT(check_errors(d, "r.yaml", checks), Catch::StartsWith("r.yaml:3:5: output 'tar': 'out/backup.tar' exists (a file) and was not"));
    }
    SECTION("a file where the path needs a folder, and an output folder that is a file") {
        std::filesystem::remove_all(d.path() + "/out");
        d.write("r2.yaml", "base: {dir: base}\noutputs: [{tar: {path: sub/a.tar}}]\n");
        d.write("out/sub", "x");
        CHECK(check_errors(d, "r2.yaml", checks) == "r2.yaml:2:12: output 'tar': 'out/sub' is a file, but 'out/sub/a.tar' is to be written inside it");
        checks.out_dir = "out/sub";
        CHECK(check_errors(d, "r2.yaml", checks) == "output folder 'out/sub' exists and is not a folder");
    }
}

TEST_CASE("the output folder may not be inside a dir: base, nor hold it", "[recipe]") {
    TempDir d;
    d.write("base/etc/hostname", "x\n");
    d.write("r.yaml", "base: {dir: base}\noutputs: [{tar: {path: a.tar}}]\n");
    OutputChecks checks;
    for (const char* out : {"base/out", "base", "."}) {
        CAPTURE(out);
        checks.out_dir = out;
        CHECK_THAT(check_errors(d, "r.yaml", checks),
                   Catch::StartsWith("r.yaml:1:13: base: the output folder '" + std::string(out) + "' (--out) ") &&
                       Catch::EndsWith("every build would read the earlier outputs into the image; build into a folder outside the base"));
    }
    checks.out_dir = "out";
    CHECK(check_errors(d, "r.yaml", checks).empty());
}
