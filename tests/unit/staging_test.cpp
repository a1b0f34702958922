#include "core/error.hpp"
#include "core/owned.hpp"
#include "core/staging.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace ib;
using namespace ib::test;

namespace {

// A sparse file of `size` bytes with `data` written at each of `at`.
std::string sparse_file(const TempDir& d, const std::string& name, uint64_t size, const std::vector<uint64_t>& at,
                        const std::string& data) {
    std::string p = d.path() + "/" + name;
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    for (uint64_t o : at) REQUIRE(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(o)) == static_cast<ssize_t>(data.size()));
    ::close(fd);
    return p;
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

TEST_CASE("BackgroundChecksum hashes holes as zeros, in steps, as sha256sum would", "[staging]") {
    TempDir d;
    std::string data(10000, 'x');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
    // Data at the start, mid-way (not block-aligned) and at the very end; holes between.
    uint64_t size = 40ull << 20;
    std::string p = sparse_file(d, "img", size, {0, (17ull << 20) + 123, size - data.size()}, data);
    std::string want = sha256_file(p).value();

    BackgroundChecksum sum(p);
    sum.ready(5000);          // inside the first data run
    sum.ready(1000);          // going back changes nothing
    sum.ready(18ull << 20);   // past the second run
    CHECK(sum.result(size) == want);

    SECTION("a file hashed in one go gives the same") {
        BackgroundChecksum once(p);
        CHECK(once.result(size) == want);
    }
    SECTION("abandoned without a result: the destructor stops the thread") {
        BackgroundChecksum abandoned(p);
        abandoned.ready(size / 2);
    }
}

TEST_CASE("BackgroundChecksum: a file that cannot be opened is an Error", "[staging]") {
    TempDir d;
    CHECK_THROWS_AS(BackgroundChecksum(d.path() + "/missing"), Error);
}

TEST_CASE("SHA256SUMS lists every staged file, sparse ones too, and takes a writer's checksum as given", "[staging]") {
    TempDir d;
    std::string out = d.path() + "/out";
    Staging staging(out);
    std::string a = staging.temp_for("a.txt");
    std::ofstream(a) << "hello\n";
    std::string img = staging.temp_for("sub/disk.img");
    uint64_t size = 9ull << 20;
    int fd = ::open(img.c_str(), O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    REQUIRE(::pwrite(fd, "data", 4, 5 << 20) == 4);
    ::close(fd);
    std::string given = staging.temp_for("given.bin");
    std::ofstream(given) << "anything";
    staging.set_checksum(given, std::string(64, 'e'));
    staging.add_checksums("SHA256SUMS");
    staging.commit();

    std::string zeros(5 << 20, '\0'), rest(size - (5 << 20) - 4, '\0');
    CHECK(slurp(out + "/SHA256SUMS") == sha256_hex("hello\n") + "  a.txt\n" + std::string(64, 'e') + "  given.bin\n" +
                                           sha256_hex(zeros + "data" + rest) + "  sub/disk.img\n");
}

namespace {

// Every file below `dir` with its content, and every folder, one per line: what "as it was" means.
std::string snapshot(const std::string& dir) {
    std::vector<std::string> lines;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        std::string rel = e.path().string().substr(dir.size());
        lines.push_back(e.is_directory() ? rel + "/" : rel + " " + sha256_hex(slurp(e.path().string())));
    }
    std::sort(lines.begin(), lines.end());
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
}

// The output folder of an earlier build: a.tar, a folder b/ and SHA256SUMS.
void earlier_build(const std::string& out) {
    Staging staging(out);
    std::ofstream(staging.temp_for("a.tar")) << "old a\n";
    std::string b = staging.temp_for("b");
    std::filesystem::create_directories(b + "/etc");
    std::ofstream(b + "/etc/passwd") << "old b\n";
    std::ofstream(staging.temp_for("z.tar")) << "old z\n";
    staging.add_checksums("SHA256SUMS");
    staging.commit();
}

// A build of the same three outputs over it, whose `fail_at`-th rename fails.
void failing_build(const std::string& out, int fail_at, std::string* error) {
    Staging staging(out);
    std::ofstream(staging.temp_for("a.tar")) << "new a\n";
    std::string b = staging.temp_for("b");
    std::filesystem::create_directories(b + "/etc");
    std::ofstream(b + "/etc/passwd") << "new b\n";
    std::ofstream(staging.temp_for("z.tar")) << "new z\n";
    staging.add_checksums("SHA256SUMS");
    int n = 0;
    staging.set_rename([&](const char* from, const char* to) {
        if (++n == fail_at) {
            errno = EPERM;
            return -1;
        }
        return ::rename(from, to);
    });
    try {
        staging.commit();
    } catch (const Error& e) {
        *error = e.what();
    }
}

} // namespace

TEST_CASE("commit is all or nothing: a rename failing at any point leaves every output and SHA256SUMS as they were", "[staging]") {
    // 4 items: 4 moved aside, then 4 moved in. A failure at any of the 8 renames changes nothing.
    for (int fail_at = 1; fail_at <= 8; ++fail_at) {
        CAPTURE(fail_at);
        TempDir d;
        std::string out = d.path() + "/out";
        earlier_build(out);
        std::string before = snapshot(out);
        std::string error;
        failing_build(out, fail_at, &error);
        CHECK_THAT(error, Catch::Contains("Operation not permitted") && Catch::EndsWith("; the output folder is as it was"));
        CHECK(snapshot(out) == before); // no temporaries, nothing set aside left behind
    }
    SECTION("and without a failure, everything is replaced, and what was replaced is gone") {
        TempDir d;
        std::string out = d.path() + "/out";
        earlier_build(out);
        std::string error;
        failing_build(out, 100, &error);
        CHECK(error.empty());
        CHECK(slurp(out + "/a.tar") == "new a\n");
        CHECK(slurp(out + "/b/etc/passwd") == "new b\n");
        CHECK(slurp(out + "/SHA256SUMS") == sha256_hex("new a\n") + "  a.tar\n" + sha256_hex("new z\n") + "  z.tar\n");
        CHECK(snapshot(out) == "/SHA256SUMS " + sha256_hex(slurp(out + "/SHA256SUMS")) + "\n/a.tar " + sha256_hex("new a\n") +
                                   "\n/b/\n/b/etc/\n/b/etc/passwd " + sha256_hex("new b\n") + "\n/z.tar " + sha256_hex("new z\n") + "\n");
    }
}

TEST_CASE("commit replaces a file by a folder and a folder by a file", "[staging]") {
    TempDir d;
    std::string out = d.path() + "/out";
    std::filesystem::create_directories(out + "/b/x");
    std::ofstream(out + "/a") << "a file\n";
    Staging staging(out);
    std::filesystem::create_directories(staging.temp_for("a") + "/inside");
    std::ofstream(staging.temp_for("b")) << "now a file\n";
    staging.commit();
    CHECK(std::filesystem::is_directory(out + "/a/inside"));
    CHECK(slurp(out + "/b") == "now a file\n");
}

TEST_CASE("the output folder's record reads back what it wrote; a damaged one counts as empty", "[staging]") {
    TempDir d;
    std::filesystem::create_directories(d.path() + "/out/nfs/node 1");
    std::ofstream(d.path() + "/out/a.tar") << "tar\n";
    auto tar = owned::describe("tar", "a.tar", d.path() + "/out/a.tar");
    auto node = owned::describe("netboot", "nfs/node 1", d.path() + "/out/nfs/node 1");
    REQUIRE(tar);
    REQUIRE(node);
    CHECK_FALSE(tar->dir);
    CHECK(node->dir);
    CHECK_FALSE(owned::describe("tar", "x", d.path() + "/out/missing"));
    std::ofstream(d.path() + "/out/" + owned::k_file) << owned::text({*tar, *node, {"tar", false, "1.2.3.4", "bad\nname"}});
    std::string problem;
    auto back = owned::read(d.path() + "/out", &problem);
    CHECK(problem.empty());
    REQUIRE(back.size() == 2); // the path with a newline was left out
    CHECK(owned::find_match(back, "nfs/node 1", "netboot", d.path() + "/out/nfs/node 1"));
    CHECK_FALSE(owned::find_match(back, "nfs/node 1", "dir", d.path() + "/out/nfs/node 1")); // another output type's
    CHECK(owned::find_match(back, "a.tar", "tar", d.path() + "/out/a.tar"));
    std::ofstream(d.path() + "/out/a.tar", std::ios::app) << "appended\n"; // written to since: not what imgbuild wrote
    CHECK_FALSE(owned::find_match(back, "a.tar", "tar", d.path() + "/out/a.tar"));

    std::ofstream(d.path() + "/out/" + owned::k_file, std::ios::app) << "garbage\n";
    CHECK(owned::read(d.path() + "/out", &problem).empty());
    CHECK_THAT(problem, Catch::EndsWith(std::string(owned::k_file) + ":6: not a line imgbuild wrote"));
}
