// Downloads into the cache (core/fetch.hpp) with file:// URLs, and `base:` URLs at plan time.
#include "core/error.hpp"
#include "core/fetch.hpp"
#include "core/log.hpp"
#include "ext/sha256.hpp"
#include "ext/yaml.hpp"
#include "helpers.hpp"
#include "sources/source.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

using namespace ib;
using namespace ib::test;

namespace {

namespace fs = std::filesystem;

// Points $IMGBUILD_CACHE at a fresh folder for the test's lifetime, with progress messages off.
// The names in a cache folder, one per line.
std::string listing(const TempCache& cache, const std::string& kind) {
    std::string s;
    for (const auto& n : cache.names(kind)) s += n + "\n";
    return s;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string error_of(const std::string& url, const std::string& sha256) {
    try {
        fetch::download(url, sha256);
    } catch (const Error& e) {
        CHECK(e.exit_code() == k_exit_build_failed);
        return e.what();
    }
    return "";
}

// parse_base on YAML text; returns the diagnostics (empty when fine) and the source's description.
std::string parse_errors(const std::string& yaml, const SourceOptions& options, std::string* description = nullptr) {
    Diagnostics diag;
    Doc doc = yaml::parse(yaml, "t.yaml", diag);
    auto source = parse_base(doc, diag, options);
    if (description && source) *description = source->describe();
    try {
        diag.checkpoint();
    } catch (const Error& e) {
        CHECK(e.exit_code() == k_exit_usage);
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("fetch: what counts as a URL, and which schemes are allowed", "[fetch]") {
    CHECK(fetch::is_url("https://example.org/a.img.xz"));
    CHECK(fetch::is_url("file:///srv/a.tar"));
    CHECK(fetch::is_url("ftp://host/x"));
    CHECK(fetch::is_url("svn+ssh://host/x"));
    CHECK_FALSE(fetch::is_url("base.tar"));
    CHECK_FALSE(fetch::is_url("../build/a:b.tar"));
    CHECK_FALSE(fetch::is_url("dir/http://x"));
    CHECK_FALSE(fetch::is_url("://x"));

    CHECK(fetch::check_url("http://127.0.0.1:8080/x.tar").ok());
    CHECK(fetch::check_url("HTTPS://example.org/x.tar").ok());
    CHECK(fetch::check_url("file:///tmp/x.tar").ok());
    CHECK(fetch::check_url("ftp://example.org/x.tar").error() == "unsupported URL scheme 'ftp' (http, https and file are)");
    CHECK_FALSE(fetch::check_url("http://").ok());
}

TEST_CASE("fetch: a pinned file:// URL is downloaded once, then found by its sha256", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string data = "the base tarball\n";
    std::string pin = sha256_hex(data);
    std::string file = src.write("base.tar", data);

    std::string got = fetch::download("file://" + file, pin);
    CHECK(got == cache.path("downloads/" + pin));
    CHECK(slurp(got) == data);
    CHECK(listing(cache, "downloads") == pin + "\n" + pin + ".sum\n"); // no .part, no temp file; the record of its sha256

    // A hit reads nothing: the URL is gone, and another URL with the same pin gives the same file.
    fs::remove(file);
    CHECK(fetch::download("file://" + file, pin) == got);
    CHECK(fetch::download("file://" + src.path() + "/elsewhere.tar", pin) == got);

    // A different pin is a miss: the (missing) URL is read, and the error names it.
    std::string other = sha256_hex("other");
    CHECK(error_of("file://" + file, other).starts_with("file://" + file + ": "));
    CHECK(listing(cache, "downloads") == pin + "\n" + pin + ".sum\n");
}

TEST_CASE("fetch: a sha256 mismatch fails naming both sums and leaves nothing in the cache", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string file = src.write("base.tar", "not what was pinned");
    std::string pin = sha256_hex("what was pinned");
    std::string url = "file://" + file;
    CHECK(error_of(url, pin) ==
          url + ": sha256 is " + sha256_hex("not what was pinned") + ", but the recipe pins " + pin);
    CHECK(listing(cache, "downloads").empty());
}

TEST_CASE("fetch: a .part left by an earlier attempt is continued, not started over", "[fetch]") {
    TempCache cache;
    TempDir src;
    // The source's first half differs from the .part's: only a resumed download matches the pin.
    std::string file = src.write("base.tar", "XXXXBBBB");
    std::string pin = sha256_hex("AAAABBBB");
    fs::create_directories(cache.path("downloads"));
    std::ofstream(cache.path("downloads/" + pin + ".part"), std::ios::binary) << "AAAA";

    std::string got = fetch::download("file://" + file, pin);
    CHECK(slurp(got) == "AAAABBBB");
    CHECK(listing(cache, "downloads") == pin + "\n" + pin + ".sum\n");
}

TEST_CASE("fetch: a .part that cannot be continued is dropped and the download starts over", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string file = src.write("base.tar", "short");
    std::string pin = sha256_hex("short");
    fs::create_directories(cache.path("downloads"));
    std::ofstream(cache.path("downloads/" + pin + ".part"), std::ios::binary) << "longer than the file itself";

    CHECK(slurp(fetch::download("file://" + file, pin)) == "short");
    CHECK(listing(cache, "downloads") == pin + "\n" + pin + ".sum\n");
}

TEST_CASE("fetch: a URL that cannot be read fails naming it and leaves no empty .part", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string url = "file://" + src.path() + "/missing.tar";
    std::string message = error_of(url, sha256_hex("x"));
    CHECK(message.starts_with(url + ": "));
    CHECK(message.find("missing.tar") != std::string::npos);
    CHECK(listing(cache, "downloads").empty());
    CHECK(error_of(url, "").starts_with(url + ": "));
    CHECK(listing(cache, "downloads-unpinned").empty());
}

TEST_CASE("fetch: an unpinned URL is downloaded again every time, under the sha256 of the URL", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string file = src.write("base.tar", "version 1");
    std::string url = "file://" + file;
    std::string got = fetch::download(url, "");
    CHECK(got == cache.path("downloads-unpinned/" + sha256_hex(url)));
    CHECK(slurp(got) == "version 1");
    src.write("base.tar", "version 2");
    CHECK(fetch::download(url, "") == got);
    CHECK(slurp(got) == "version 2");
    CHECK(listing(cache, "downloads-unpinned") == sha256_hex(url) + "\n");
}

TEST_CASE("base: a URL needs a sha256 pin unless --insecure, and an http, https or file scheme", "[fetch]") {
    std::string pin(64, 'A');
    std::string lower(64, 'a');
    std::string described;
    CHECK(parse_errors("{tarball: 'http://127.0.0.1:1/base.tar'}", {}) ==
          "t.yaml:1:1: base: a URL needs a sha256 pin (or run with --insecure)");
    CHECK(parse_errors("\n  {image: 'https://127.0.0.1:1/a.img.xz'}", {}) ==
          "t.yaml:2:3: base: a URL needs a sha256 pin (or run with --insecure)");

    CHECK(parse_errors("{tarball: 'http://127.0.0.1:1/base.tar'}", {true}, &described) == "");
    CHECK(described == "tarball http://127.0.0.1:1/base.tar (not pinned)");
    CHECK(parse_errors("{image: 'file:///nonexistent/a.img', sha256: " + pin + "}", {}, &described) == "");
    CHECK(described == "image file:///nonexistent/a.img (sha256 " + lower.substr(0, 12) + "…)");

    CHECK(parse_errors("{tarball: 'ftp://127.0.0.1/base.tar', sha256: " + pin + "}", {}) ==
          "t.yaml:1:11: base: 'ftp://127.0.0.1/base.tar': unsupported URL scheme 'ftp' (http, https and file are)");
    CHECK(parse_errors("{tarball: 'https://127.0.0.1/base.tar', sha256: abc}", {}) ==
          "t.yaml:1:49: base: sha256 'abc' is not 64 hex digits");
}

TEST_CASE("base: local paths are checked as before; an image may be pinned", "[fetch]") {
    TempDir d;
    std::string img = d.write("a.img", "x");
    std::string pin(64, 'b');
    std::string described;
    CHECK(parse_errors("{image: " + img + ", sha256: " + pin + "}", {}, &described) == "");
    CHECK(described == "image " + img + " (sha256 bbbbbbbbbbbb…)");
    CHECK(parse_errors("{tarball: " + d.path() + "/missing.tar}", {true}) ==
          "t.yaml:1:11: base: tarball '" + d.path() + "/missing.tar': No such file or directory");
    CHECK(parse_errors("{dir: " + d.path() + ", sha256: " + pin + "}", {}) ==
          "t.yaml:1:" + std::to_string(17 + d.path().size()) + ": base: sha256 pins a file; a folder has none");
}

TEST_CASE("fetch: a cached download changed on disk is hashed again; no longer the pinned file, it is fetched again", "[fetch]") {
    TempCache cache;
    TempDir src;
    std::string data = "the base tarball, pinned\n";
    std::string pin = sha256_hex(data);
    std::string file = src.write("base.tar", data);
    std::string url = "file://" + file;
    std::string got = fetch::download(url, pin);
    REQUIRE(slurp(got) == data);

    SECTION("one byte changed: removed, downloaded again, the pinned bytes used") {
        std::string bad = data;
        bad[4] = 'X';
        std::ofstream(got, std::ios::binary | std::ios::trunc) << bad;
        CHECK(fetch::download(url, pin) == got);
        CHECK(slurp(got) == data);
    }
    SECTION("changed, and the URL gone: the build fails rather than use it, and the bad file is gone") {
        std::ofstream(got, std::ios::binary | std::ios::app) << "x";
        fs::remove(file);
        CHECK(error_of(url, pin).starts_with(url + ": "));
        CHECK(listing(cache, "downloads").empty());
    }
    SECTION("touched but the same bytes: kept, and its record renewed") {
        struct timespec times[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
        REQUIRE(::utimensat(AT_FDCWD, got.c_str(), times, 0) == 0);
        fs::remove(file); // not read again
        CHECK(fetch::download(url, pin) == got);
        CHECK(fetch::download(url, pin) == got);
    }
    SECTION("a download whose bytes changed without its times changing is found by recheck") {
        CHECK(fetch::recheck(pin)); // as pinned
        // Rewrite the record so that it matches the corrupted file's times, as a disk losing bytes would.
        std::string rec = slurp(got + ".sum");
        std::ofstream(got, std::ios::binary | std::ios::trunc) << std::string(data.size(), 'z');
        struct stat st {};
        REQUIRE(::stat(got.c_str(), &st) == 0);
        std::istringstream in(rec);
        std::string sum;
        in >> sum;
        std::ofstream(got + ".sum", std::ios::trunc)
            << sum << ' ' << st.st_size << ' ' << (int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) << ' '
            << (int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec) << ' ' << st.st_ino << '\n';
        CHECK(slurp(fetch::download(url, pin)) == std::string(data.size(), 'z')); // a stat cannot see it
        CHECK_FALSE(fetch::recheck(pin));
        CHECK(listing(cache, "downloads").empty());
        CHECK(slurp(fetch::download(url, pin)) == data);
    }
}

TEST_CASE("fetch: a corrupt pinned .tar.zst in the cache does not fail every later build", "[fetch]") {
    TempCache cache;
    TempDir src;
    src.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    REQUIRE(std::system(("tar -C " + src.path() + "/root -cf - . | zstd -q -o " + src.path() + "/base.tar.zst").c_str()) == 0);
    std::string tarball = src.path() + "/base.tar.zst";
    std::string pin = sha256_file(tarball).value();
    std::string yaml = "tarball: file://" + tarball + "\nsha256: " + pin + "\n";
    Diagnostics diag;
    Doc doc = yaml::parse(yaml, "t.yaml", diag);
    auto source = parse_base(doc, diag, {});
    REQUIRE(source);
    CHECK(source->read({1700000000, 0}).read_file("/etc/passwd") == "root:x:0:0:root:/root:/bin/sh\n");
    // A byte in the middle of the cached copy flipped.
    std::string cached = cache.path("downloads/" + pin);
    std::string bytes = slurp(cached);
    bytes[bytes.size() / 2] ^= 0x55;
    std::ofstream(cached, std::ios::binary | std::ios::trunc) << bytes;
    CHECK(source->read({1700000000, 0}).read_file("/etc/passwd") == "root:x:0:0:root:/root:/bin/sh\n");
    CHECK(sha256_file(cached).value() == pin);
}
