#include "core/error.hpp"
#include "core/staging.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
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
