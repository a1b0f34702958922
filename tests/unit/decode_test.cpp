// Decoding compressed images into sparse files (ext/decode.hpp), and the decoded-image cache of
// open_disk_image (sources/image.cpp): inputs are made with the xz, zstd, gzip, bzip2 and zip tools.
#include "core/error.hpp"
#include "core/log.hpp"
#include "ext/decode.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"
#include "sources/source.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <sys/stat.h>

using namespace ib;
using namespace ib::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

namespace fs = std::filesystem;

void run(const std::string& command) {
    INFO(command);
    REQUIRE(std::system(("(" + command + ") >/dev/null 2>&1").c_str()) == 0);
}

// The compressors make the inputs; ci/deps.sh installs every one of them, so a missing one is a
// broken test machine, not a reason to check less.
void require_tool(const std::string& tool) {
    if (std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) != 0)
        FAIL("'" << tool << "' is missing: install it (ci/deps.sh does)");
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// 20 MiB + 1000 bytes, mostly zeros: data at the start, across the 4 MiB boundary of the writer's
// buffers, in the middle, and zeros to the end (the output must end in a hole of the right size).
std::string mostly_zero_image() {
    std::string img(20 * 1024 * 1024 + 1000, '\0');
    uint32_t x = 12345;
    auto fill = [&](size_t at, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            x = x * 1103515245 + 12345;
            img[at + i] = static_cast<char>((x >> 16) % 7 + 1); // never zero, and compressible
        }
    };
    fill(0, 64 * 1024);
    fill(4 * 1024 * 1024 - 2048, 8000);
    fill(13 * 1024 * 1024 + 100, 300 * 1024);
    return img;
}

// `image` compressed by the zstd tool (ci/deps.sh installs it) as d/image.img.zst; its path.
std::string zstd_file(const TempDir& d, const std::string& image) {
    require_tool("zstd");
    d.write("image.img", image);
    run("cd " + d.path() + " && zstd -q -c image.img > image.img.zst");
    return d.path() + "/image.img.zst";
}

uint64_t allocated(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
}

// Each form of the image: file name in `d`, and the commands that make it from image.img.
struct Form {
    const char* name;
    const char* tool;
    const char* make;
};
const Form k_forms[] = {
    {"image.img.xz", "xz", "xz -k -c image.img > image.img.xz"},
    // Several blocks: the multi-threaded decoder's case.
    {"mt.img.xz", "xz", "xz -T2 --block-size=1MiB -c image.img > mt.img.xz"},
    // Two streams, one after the other: one image, as xz -d sees it.
    {"two.img.xz", "xz", "head -c 5000000 image.img | xz -c > two.img.xz && tail -c +5000001 image.img | xz -c >> two.img.xz"},
    {"image.img.zst", "zstd", "zstd -q -c image.img > image.img.zst"},
    {"two.img.zst", "zstd", "head -c 5000000 image.img | zstd -q -c > two.img.zst && tail -c +5000001 image.img | zstd -q -c >> two.img.zst"},
    {"image.img.gz", "gzip", "gzip -k -c image.img > image.img.gz"},
    {"image.img.bz2", "bzip2", "bzip2 -k -c image.img > image.img.bz2"},
    {"image.zip", "zip", "echo readme > README && zip -q image.zip README image.img"},
};

// Points $IMGBUILD_CACHE at a fresh folder for the test's lifetime, with progress messages off.
// The decoded images in the cache, by name, sorted.
std::vector<std::string> decoded(const TempCache& cache) {
    std::vector<std::string> out;
    for (const auto& n : cache.names("decoded"))
        if (n.ends_with(".img")) out.push_back(n);
    return out;
}

} // namespace

TEST_CASE("every codec decodes to the image, with holes for the zeros and the input's sha256", "[decode]") {
    TempDir d;
    std::string image = mostly_zero_image();
    std::string plain = d.write("image.img", image);
    for (const Form& form : k_forms) {
        require_tool(form.tool);
        run("cd " + d.path() + " && " + form.make);
        std::string in = d.path() + "/" + form.name;
        CHECK(decode::sniff(in) != "");
        std::string out = d.path() + "/out-" + form.name;
        decode::InputDigest digest;
        auto r = decode::to_sparse_file(in, out, &digest);
        INFO(form.name << ": " << (r.ok() ? "" : r.error()));
        REQUIRE(r.ok());
        CHECK(r.value().size == image.size());
        CHECK(r.value().member == (std::string(form.name) == "image.zip" ? "image.img" : ""));
        CHECK(fs::file_size(out) == image.size());
        CHECK(read_all(out) == image);
        // About 380 KiB of data in 20 MiB: the zeros are holes.
        CHECK(allocated(out) < 1024 * 1024);
        CHECK(allocated(plain) > 20 * 1024 * 1024); // the filesystem does store what is written
        CHECK(digest.complete);
        CHECK(digest.sha256 == sha256_file(in).value());
        // Without a digest, the same.
        fs::remove(out);
        REQUIRE(decode::to_sparse_file(in, out).ok());
        CHECK(read_all(out) == image);
        fs::remove(out);
    }
}

TEST_CASE("a truncated or corrupt input fails naming the file, and leaves no output", "[decode]") {
    TempDir d;
    std::string image = mostly_zero_image();
    d.write("image.img", image);
    struct Case {
        const char* tool;
        const char* make; // makes cut.* from image.img
        const char* name;
        const char* says;
    };
    const Case cases[] = {
        {"xz", "xz -c image.img | head -c 20000 > cut.img.xz", "cut.img.xz", "the xz data ends early: the file is truncated (after "},
        {"xz", "xz -T2 --block-size=1MiB -c image.img > f && head -c $(($(stat -c %s f) - 100)) f > cut.mt.img.xz", "cut.mt.img.xz",
         "the xz data ends early: the file is truncated (after "},
        {"zstd", "zstd -q -c image.img | head -c 20000 > cut.img.zst", "cut.img.zst", "the zstd data ends early: the file is truncated (after "},
        // A byte changed in the middle: the check (xz) or the frame's checksum or structure (zstd) catches it.
        {"xz", "xz -c image.img > cut.img.xz2 && printf '\\x55' | dd of=cut.img.xz2 bs=1 seek=3000 conv=notrunc", "cut.img.xz2", "the xz data is corrupt"},
        {"zstd", "zstd -q -c image.img > cut.img.zst2 && printf '\\x55\\x55\\x55\\x55' | dd of=cut.img.zst2 bs=1 seek=3000 conv=notrunc", "cut.img.zst2", "zstd: "},
        // libarchive: "cannot open 'F': truncated gzip input", or "'F': ... (after N bytes: truncated or corrupt?)".
        {"gzip", "gzip -c image.img | head -c 20000 > cut.img.gz", "cut.img.gz", "truncated"},
        {"bzip2", "bzip2 -c image.img | head -c 20000 > cut.img.bz2", "cut.img.bz2", "truncated"},
    };
    for (const Case& c : cases) {
        require_tool(c.tool);
        run("cd " + d.path() + " && " + c.make);
        std::string in = d.path() + "/" + c.name;
        std::string out = d.path() + "/out.img";
        decode::InputDigest digest;
        auto r = decode::to_sparse_file(in, out, &digest);
        INFO(c.name);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error(), Contains("'" + in + "'"));
        CHECK_THAT(r.error(), Contains(c.says));
        CHECK_FALSE(fs::exists(out));
        // The whole file was hashed all the same: a pinned caller can tell it is not the file pinned.
        CHECK(digest.complete);
        CHECK(digest.sha256 == sha256_file(in).value());
    }
}

TEST_CASE("a zip without an image and a missing input fail naming the file", "[decode]") {
    TempDir d;
    require_tool("zip");
    require_tool("xz");
    d.write("README", "hello");
    run("cd " + d.path() + " && zip -q noimg.zip README");
    std::string out = d.path() + "/out.img";
    auto r = decode::to_sparse_file(d.path() + "/noimg.zip", out);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "'" + d.path() + "/noimg.zip' is a zip with no disk image in it (looked for a *.img member)");
    CHECK_FALSE(fs::exists(out));
    r = decode::to_sparse_file(d.path() + "/missing.img.xz", out);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "open '" + d.path() + "/missing.img.xz': No such file or directory");
    // An output that already exists is not overwritten, nor removed.
    d.write("taken.img", "mine");
    run("cd " + d.path() + " && echo x | xz > small.img.xz");
    r = decode::to_sparse_file(d.path() + "/small.img.xz", d.path() + "/taken.img");
    REQUIRE_FALSE(r.ok());
    CHECK(read_all(d.path() + "/taken.img") == "mine");
}

TEST_CASE("a pinned image is verified while it is decoded and cached by its pin", "[decode]") {
    require_tool("xz");
    TempCache cache;
    TempDir d;
    d.write("image.img", mostly_zero_image());
    run("cd " + d.path() + " && xz -T2 --block-size=1MiB -c image.img > image.img.xz");
    std::string in = d.path() + "/image.img.xz";
    std::string actual = sha256_file(in).value();
    std::string other = sha256_hex("something else");

    // The wrong pin: the recipe's message, and nothing in the cache.
    CHECK_THROWS_WITH(open_disk_image(in, other),
                      "image '" + in + "' has sha256 " + actual + ", but the recipe pins " + other);
    CHECK(decoded(cache).empty());

    // A truncated file under a pin is not the file pinned; unpinned, it is a truncated file.
    run("cd " + d.path() + " && xz -c image.img | head -c 20000 > cut.img.xz");
    std::string cut = d.path() + "/cut.img.xz";
    CHECK_THROWS_WITH(open_disk_image(cut, actual),
                      "image '" + cut + "' has sha256 " + sha256_file(cut).value() + ", but the recipe pins " + actual);
    CHECK_THROWS_WITH(open_disk_image(cut, ""), StartsWith("image: '" + cut + "': the xz data ends early: the file is truncated"));
    CHECK(decoded(cache).empty());

    // The right pin: decoded into the cache under the pin (the fixture is no disk image: reading the
    // decoded copy fails after that, naming the input).
    auto not_an_image = StartsWith("image '" + in + "': no ext2/3/4 root filesystem");
    CHECK_THROWS_WITH(open_disk_image(in, actual).read(), not_an_image);
    CHECK(decoded(cache) == std::vector<std::string>{actual + ".img"});

    // A cache hit reads nothing of the input: not even a file that is no longer the one pinned.
    run("cd " + d.path() + " && echo other | xz > image.img.xz");
    CHECK_THROWS_WITH(open_disk_image(in, actual).read(), not_an_image);
    CHECK(decoded(cache) == std::vector<std::string>{actual + ".img"});
}

TEST_CASE("an unpinned image is cached by the file's identity: a changed file is decoded again", "[decode]") {
    TempCache cache;
    TempDir d;
    std::string in = zstd_file(d, mostly_zero_image());
    auto not_an_image = StartsWith("image '" + in + "': no ext2/3/4 root filesystem");
    CHECK_THROWS_WITH(open_disk_image(in, "").read(), not_an_image);
    auto first = decoded(cache);
    REQUIRE(first.size() == 1);
    CHECK_THAT(first[0], StartsWith("file-"));
    CHECK_FALSE(first[0] == sha256_file(in).value() + ".img"); // not keyed by content
    // Unchanged: the same entry.
    CHECK_THROWS_WITH(open_disk_image(in, "").read(), not_an_image);
    CHECK(decoded(cache) == first);
    // Same content, another modification time: another entry (its mtime is all that changed).
    struct timespec times[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
    REQUIRE(::utimensat(AT_FDCWD, in.c_str(), times, 0) == 0);
    CHECK_THROWS_WITH(open_disk_image(in, "").read(), not_an_image);
    CHECK(decoded(cache).size() == 2);
}

TEST_CASE("a decoded image changed in the cache is not used: it is decoded again, pinned or not", "[decode]") {
    TempCache cache;
    TempDir d;
    std::string image = mostly_zero_image();
    std::string in = zstd_file(d, image);
    std::string want = sha256_hex(image);
    auto not_an_image = StartsWith("image '" + in + "': no ext2/3/4 root filesystem");
    for (std::string pin : {std::string(), sha256_file(in).value()}) {
        CAPTURE(pin);
        CHECK_THROWS_WITH(open_disk_image(in, pin).read(), not_an_image);
        std::vector<std::string> names;
        for (const auto& n : decoded(cache))
            if (pin.empty() ? n.starts_with("file-") : n == pin + ".img") names.push_back(n);
        REQUIRE(names.size() == 1);
        std::string entry = cache.path("decoded/" + names[0]);
        CHECK(sha256_file(entry).value() == want);
        CHECK(std::filesystem::exists(entry + ".sum"));

        // One byte flipped in place (size and mtime kept, as a careful hand or a bad disk would).
        struct stat before {};
        REQUIRE(::stat(entry.c_str(), &before) == 0);
        int fd = ::open(entry.c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::pwrite(fd, "\x7f", 1, 100) == 1);
        ::close(fd);
        struct timespec times[2] = {before.st_atim, before.st_mtim};
        REQUIRE(::utimensat(AT_FDCWD, entry.c_str(), times, 0) == 0);
        REQUIRE_FALSE(sha256_file(entry).value() == want);

        CHECK_THROWS_WITH(open_disk_image(in, pin).read(), not_an_image);
        CHECK(sha256_file(entry).value() == want);

        // Touched, the same bytes: hashed once, kept (same inode), its record renewed.
        struct timespec later[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
        REQUIRE(::utimensat(AT_FDCWD, entry.c_str(), later, 0) == 0);
        REQUIRE(::stat(entry.c_str(), &before) == 0);
        CHECK_THROWS_WITH(open_disk_image(in, pin).read(), not_an_image);
        struct stat after {};
        REQUIRE(::stat(entry.c_str(), &after) == 0);
        CHECK(after.st_ino == before.st_ino);
        CHECK(sha256_file(entry).value() == want);
    }
}

TEST_CASE("a decoded image without a recorded sha256 (an older imgbuild's) is decoded again", "[decode]") {
    TempCache cache;
    TempDir d;
    std::string image = mostly_zero_image();
    std::string in = zstd_file(d, image);
    std::string pin = sha256_file(in).value();
    std::filesystem::create_directories(cache.path("decoded"));
    std::string entry = cache.path("decoded/" + pin + ".img");
    std::ofstream(entry, std::ios::binary) << "not what it should be";
    CHECK_THROWS_WITH(open_disk_image(in, pin).read(), StartsWith("image '" + in + "': no ext2/3/4 root filesystem"));
    CHECK(sha256_file(entry).value() == sha256_hex(image));
}
