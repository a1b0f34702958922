// Bounded time and memory on hostile input (issue 11, section 5): host files that never end or
// never open, YAML aliases and template vars that multiply, long var chains, floods of errors.
#include "core/build.hpp"
#include "core/host_file.hpp"
#include "core/template.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

std::string plan_errors(const TempDir& dir, const std::string& name) {
    std::string cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    std::string out;
    try {
        make_plan(name, {});
    } catch (const Error& e) {
        CHECK(e.exit_code() == k_exit_usage);
        out = e.what();
    }
    std::filesystem::current_path(cwd);
    return out;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

} // namespace

TEST_CASE("host files: only regular files, never blocking, within a size", "[bounds]") {
    TempDir d;
    std::string fifo = d.path() + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto r = host_file::read(fifo, 1024, "user_data"); // must return, not wait for a writer
    REQUIRE(!r);
    CHECK(r.error() == "cannot read user_data: '" + fifo + "' is a FIFO, not a regular file");
    CHECK(host_file::refuse(fifo) == "'" + fifo + "' is a FIFO, not a regular file");

    auto zero = host_file::read("/dev/zero", 1024, "recipe");
    REQUIRE(!zero);
    CHECK(zero.error() == "cannot read recipe: '/dev/zero' is a character device, not a regular file");
    CHECK(!host_file::read(d.path(), 1024, "recipe"));
    CHECK_THAT(host_file::read(d.path(), 1024, "recipe").error(), Catch::Contains("is a folder"));

    std::string big = d.write("big", std::string(2048, 'x'));
    auto too_big = host_file::read(big, 1024, "key file");
    REQUIRE(!too_big);
    CHECK(too_big.error() == "key file '" + big + "' is larger than the 1 KiB a key file may be");
    auto fits = host_file::read(big, 2048, "key file");
    REQUIRE(fits);
    CHECK(fits.value() == std::string(2048, 'x'));

    auto missing = host_file::read(d.path() + "/none", 1024, "recipe");
    CHECK(missing.error() == "cannot read recipe '" + d.path() + "/none': No such file or directory");
    CHECK(host_file::human_size(16u << 20) == "16 MiB");
    CHECK(host_file::human_size(1536) == "1.5 KiB");
}

TEST_CASE("recipes and extends: a FIFO or a device is an error at its place", "[bounds]") {
    TempDir d;
    REQUIRE(::mkfifo((d.path() + "/parent.yaml").c_str(), 0600) == 0);
    d.write("r.yaml", "extends: parent.yaml\nbase: {dir: .}\noutputs: [{tar: {path: a.tar}}]\n");
    CHECK(plan_errors(d, "r.yaml") == "r.yaml:1:10: cannot read recipe: 'parent.yaml' is a FIFO, not a regular file");
    d.write("z.yaml", "extends: /dev/zero\nbase: {dir: .}\noutputs: [{tar: {path: a.tar}}]\n");
    CHECK(plan_errors(d, "z.yaml") ==
          "z.yaml:1:10: cannot read recipe: '/dev/zero' is a character device, not a regular file");
}

TEST_CASE("YAML: nested aliases are refused quickly, with one error", "[bounds]") {
    std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    char prev = 'a';
    for (char c = 'b'; c <= 'j'; ++c) {
        text += std::string(1, c) + ": &" + c + " [";
        for (int i = 0; i < 10; ++i) text += std::string(i ? ", " : "") + "*" + prev;
        text += "]\n";
        prev = c;
    }
    auto start = std::chrono::steady_clock::now();
    Diagnostics diag;
    Doc doc = yaml::parse(text, "laughs.yaml", diag);
    CHECK(seconds_since(start) < 5); // under a second unloaded; generous for sanitizer builds
    CHECK(doc.is_null());
    CHECK(diag.error_count() == 1);
    CHECK_THROWS_WITH(diag.checkpoint(), Catch::Contains("laughs.yaml:") && Catch::Contains("aliases expand the document past"));

    // A few aliases, as recipes use them, are fine.
    Diagnostics ok;
    Doc small = yaml::parse("d: &d {a: 1}\nx: [*d, *d, *d]\n", "ok.yaml", ok);
    CHECK(!ok.has_errors());
    CHECK(small.find("x")->items().size() == 3);
}

TEST_CASE("vars: long chains and doubling are errors, not a crash or all memory", "[bounds]") {
    TempDir d;
    // v0000 uses v0001, which uses v0002, ...: resolved from the first, 4999 deep.
    auto name = [](int i) {
        char b[16];
        std::snprintf(b, sizeof b, "v%04d", i);
        return std::string(b);
    };
    std::string chain = "base: {dir: .}\noutputs: [{tar: {path: a.tar}}]\nvars:\n";
    for (int i = 0; i < 4999; ++i) chain += "  " + name(i) + ": \"{{" + name(i + 1) + "}}y\"\n";
    chain += "  " + name(4999) + ": x\n";
    d.write("chain.yaml", chain);
    CHECK_THAT(plan_errors(d, "chain.yaml"), Catch::Contains("is reached through a chain of more than 1000 vars"));

    std::string doubling = "base: {dir: .}\noutputs: [{tar: {path: a.tar}}]\nvars:\n  d0: lol\n";
    for (int i = 1; i < 40; ++i)
        doubling += "  d" + std::to_string(i) + ": \"{{d" + std::to_string(i - 1) + "}}{{d" + std::to_string(i - 1) + "}}\"\n";
    d.write("double.yaml", doubling);
    CHECK_THAT(plan_errors(d, "double.yaml"), Catch::Contains("template: variables expand to more than 256 MiB in all"));
}

TEST_CASE("vars: 20k of them load in linear time", "[bounds]") {
    TempDir d;
    std::string text = "base: {dir: .}\noutputs: [{tar: {path: a.tar}}]\nvars:\n";
    for (int i = 0; i < 20000; i += 2)
        text += "  v" + std::to_string(i) + ": x\n  v" + std::to_string(i + 1) + ": \"{{v" + std::to_string(i) + "}}\"\n";
    d.write("r.yaml", text);
    auto start = std::chrono::steady_clock::now();
    CHECK(plan_errors(d, "r.yaml") == "");
    CHECK(seconds_since(start) < 10); // 0.1 s here; the quadratic duplicate check took about 2 s
}

TEST_CASE("a flood of errors keeps the first 1000 and counts the rest", "[bounds]") {
    Diagnostics diag;
    auto file = std::make_shared<const std::string>("f.yaml");
    for (int i = 1; i <= 5000; ++i) diag.error(Mark{file, i, 1}, "bad");
    CHECK(diag.error_count() == 5000);
    CHECK(!diag.wants_hints());
    try {
        diag.checkpoint();
        FAIL("no error");
    } catch (const Error& e) {
        std::string s = e.what();
        CHECK(std::count(s.begin(), s.end(), '\n') == 1000);
        CHECK_THAT(s, Catch::EndsWith("... and 4000 more errors (the first 1000 are shown)"));
    }
}

TEST_CASE("template messages quote long text cut short", "[bounds]") {
    Diagnostics diag;
    std::map<std::string, std::string> vars;
    Scope scope{&vars, nullptr, ""};
    CHECK(!render(std::string(100000, '{') + "}}", scope, diag, {}));
    try {
        diag.checkpoint();
    } catch (const Error& e) {
        CHECK(std::string(e.what()).size() < 300);
    }
}
