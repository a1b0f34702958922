// The FAT writer, judged by tools this project did not write: fsck.fat (dosfstools), mdir / mcopy /
// mtype (mtools) and blkid (util-linux), and by the project's own reader (core/fat.hpp). A missing tool
// fails the test: CI installs them.
#include "core/disk.hpp"
#include "core/error.hpp"
#include "core/fat.hpp"
#include "core/fat_write.hpp"
#include "ext/sha256.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ib;
using namespace ib::test;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t k_mib = 1 << 20;
const std::string k_boot = "/boot/firmware";

struct Run {
    int status = -1;
    std::string output; // stdout and stderr
};

Run run(const std::string& command) {
    Run r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

void require_tool(const std::string& tool, const std::string& package) {
    if (run("command -v " + tool).status != 0)
        FAIL("'" << tool << "' is missing: install " << package << " (ci/deps.sh does)");
}

// mtools reads long names as UTF-8 and FAT times as UTC only when told so, and checks the boot
// sector strictly unless MTOOLS_SKIP_CHECK is set.
std::string mtools(const std::string& args) { return "env -u MTOOLS_SKIP_CHECK LC_ALL=C.UTF-8 TZ=UTC " + args; }

// Formats a fresh file of `size` bytes (sparse) and writes `dir` of `tree` into it.
std::string write_image(const TempDir& tmp, const std::string& name, uint64_t size, const Tree& tree,
                        const FatOptions& options, const std::string& dir = k_boot) {
    std::string p = tmp.path() + "/" + name;
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    try {
        write_fat(fd, 0, size, tree, dir, options);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return p;
}

// What a FAT time keeps of `t`: even seconds, nothing before 1980.
int64_t fat_seconds(Timestamp t) { return std::max<int64_t>(t.sec - t.sec % 2, 315532800); }

// Lines "path d" and "path f SIZE SHA256 MTIME" (paths relative to the listed folder), sorted: the
// common form of the source tree, the reader's tree and mcopy's host copy.
using Listing = std::vector<std::string>;

std::string file_line(const std::string& rel, const std::string& data, int64_t mtime) {
    return rel + " f " + std::to_string(data.size()) + " " + sha256_hex(data) + " " + std::to_string(mtime);
}

// What the FAT copy of `stored` must hold: symlinks followed, times as FAT keeps them.
void expected(const Tree& tree, const std::string& stored, const std::string& rel, Timestamp fallback, Listing& out) {
    for (const auto& name : tree.children(stored)) {
        std::string p = stored + "/" + name, r = rel + "/" + name;
        const Entry* e = tree.find(p);
        REQUIRE(e);
        Timestamp t = e->mtime == Timestamp{} ? fallback : e->mtime;
        if (e->is_dir()) {
            out.push_back(r + " d");
            expected(tree, tree.resolve(p), r, fallback, out);
        } else {
            out.push_back(file_line(r, e->content ? read_all(e->content) : "", fat_seconds(t)));
        }
    }
}

Listing expected(const Tree& tree, Timestamp fallback) {
    Listing out;
    expected(tree, tree.resolve(k_boot), "", fallback, out);
    std::sort(out.begin(), out.end());
    return out;
}

Listing tree_listing(const Tree& tree, const std::string& mount) {
    Listing out;
    tree.walk_under(mount, [&](const std::string& p, const Entry& e) {
        if (p == mount) return;
        std::string rel = p.substr(mount.size());
        if (e.is_dir()) out.push_back(rel + " d");
        else out.push_back(file_line(rel, e.content ? read_all(e.content) : "", e.mtime.sec));
    });
    std::sort(out.begin(), out.end());
    return out;
}

// The lines only one side has, "+" for `got`, "-" for `want`: empty when they agree, and short to read
// when they do not.
std::string diff(const Listing& got, const Listing& want) {
    std::string out;
    for (const auto& l : got)
        if (!std::binary_search(want.begin(), want.end(), l)) out += "+ " + l + "\n";
    for (const auto& l : want)
        if (!std::binary_search(got.begin(), got.end(), l)) out += "- " + l + "\n";
    return out;
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Listing host_listing(const std::string& root) {
    Listing out;
    for (const auto& de : fs::recursive_directory_iterator(root)) {
        std::string rel = de.path().string().substr(root.size());
        if (de.is_directory()) {
            out.push_back(rel + " d");
        } else {
            struct stat st {};
            REQUIRE(::stat(de.path().c_str(), &st) == 0);
            out.push_back(file_line(rel, slurp(de.path().string()), st.st_mtime));
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The image as the project's own reader sees it.
Listing read_back(const std::string& image, uint64_t offset, uint64_t size) {
    Tree t;
    read_fat(ImageFile::open(image), offset, size, t, "/mnt");
    return tree_listing(t, "/mnt");
}

FatInfo info_of(const std::string& image, uint64_t offset, uint64_t size) {
    return fat_info(*ImageFile::open(image), offset, size);
}

// fsck.fat -n must find nothing to say but its banner and the summary line.
void require_fsck_clean(const std::string& image) {
    require_tool("fsck.fat", "dosfstools");
    Run r = run("fsck.fat -n " + quote(image));
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find("ifferen") == std::string::npos);
    CHECK(r.output.find("rror") == std::string::npos);
    CHECK(r.output.find("arning") == std::string::npos);
    CHECK(r.output.find("wrong") == std::string::npos);
    size_t lines = std::count(r.output.begin(), r.output.end(), '\n');
    CHECK(lines == 2);
}

// Used clusters as fsck.fat counts them ("IMG: 12 files, 345/67890 clusters").
uint64_t fsck_used_clusters(const std::string& image) {
    Run r = run("fsck.fat -n " + quote(image));
    size_t files = r.output.find(" files, ");
    REQUIRE(files != std::string::npos);
    return std::stoull(r.output.substr(files + 8));
}

void require_blkid(const std::string& image, const std::string& label, const std::string& uuid, const std::string& version) {
    require_tool("blkid", "util-linux");
    Run r = run("blkid -p " + quote(image));
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find("TYPE=\"vfat\"") != std::string::npos);
    CHECK(r.output.find(" LABEL=\"" + label + "\"") != std::string::npos);
    CHECK(r.output.find("UUID=\"" + uuid + "\"") != std::string::npos);
    CHECK(r.output.find("VERSION=\"" + version + "\"") != std::string::npos);
}

// mtools converts long names one UTF-16 unit at a time: a character outside the BMP, stored as a
// surrogate pair, comes out as two '_'.
Listing as_mtools_reads(Listing want) {
    for (auto& line : want)
        if (size_t at = line.find("🍓"); at != std::string::npos) line.replace(at, std::string("🍓").size(), "__");
    std::sort(want.begin(), want.end());
    return want;
}

// Everything mcopy copies out of the image, as a listing.
Listing mcopy_listing(const TempDir& tmp, const std::string& image, const std::string& name) {
    require_tool("mcopy", "mtools");
    std::string out = tmp.path() + "/" + name;
    fs::create_directories(out);
    Run r = run(mtools("mcopy -s -m -n -i " + quote(image) + " ::/ " + quote(out + "/")));
    INFO(r.output);
    CHECK(r.status == 0);
    return host_listing(out);
}

// Deterministic bytes that do not repeat within a cluster: a file's clusters must be in order.
std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>(x >> 24);
    }
    return s;
}

// A file that claims 4 GiB, one byte more than FAT can hold; never read.
class Huge final : public Content {
public:
    uint64_t size() const override { return uint64_t{1} << 32; }
    void read(uint64_t, char* buf, size_t len) const override { std::fill_n(buf, len, '\0'); }
    std::string describe() const override { return "a 4 GiB file"; }
};

Entry file_at(const std::string& data, int64_t sec) { return Entry::file(make_blob(data), 0644, {sec, 0}); }

// A boot folder with every kind of name and shape the writer must handle.
Tree sample_tree(bool big_file = true) {
    Tree t;
    t.put("/boot/outside.txt", file("outside the boot folder\n"));
    t.put(k_boot, Entry::directory(0755, {1700000000, 0}));
    t.put(k_boot + "/config.txt", file_at("arm_64bit=1\n", 1700000001)); // odd second: FAT keeps the even one
    t.put(k_boot + "/README", file_at("an 8.3 name in upper case: no long name\n", 1700000100));
    t.put(k_boot + "/café.txt", file("crème brûlée\n"));
    t.put(k_boot + "/a name with spaces.txt", file("spaces\n"));
    t.put(k_boot + "/strawberry 🍓.txt", file("outside the BMP\n"));
    t.put(k_boot + "/LONG_FILE_NAME_THAT_IS_LONG.dat", file("long\n"));
    t.put(k_boot + "/Mixed.Case.Name.tar.gz", file("dots\n"));
    t.put(k_boot + "/a+b[1].txt", file("lossy short name\n"));
    t.put(k_boot + "/.hidden", file("dot file\n"));
    t.put(k_boot + "/empty.txt", file(""));
    t.put(k_boot + "/old.txt", file_at("before FAT's epoch\n", 100)); // 1970: stored as 1980-01-01
    t.put(k_boot + "/empty-folder", dir());
    t.put(k_boot + "/link-to-config", link("config.txt"));
    t.put(k_boot + "/link-to-outside", link("../outside.txt"));
    t.put(k_boot + "/link-to-deep", link("/boot/firmware/deep/a"));
    std::string deep = k_boot + "/deep";
    for (char c = 'a'; c <= 'l'; ++c) deep += std::string("/") + c;
    t.put(deep + "/bottom.txt", file("twelve folders down\n"));
    for (int i = 0; i < 300; ++i) { // with long names: about 28 KiB of entries, many clusters
        char name[32];
        std::snprintf(name, sizeof name, "/overlays/overlay-%03d.dtbo", i);
        t.put(k_boot + name, file(pattern(100 + static_cast<size_t>(i) * 7, static_cast<uint32_t>(i))));
    }
    if (big_file) t.put(k_boot + "/kernel8.img", file(pattern(5'000'000, 99)));
    else t.put(k_boot + "/kernel8.img", file(pattern(100'000, 99)));
    return t;
}

FatOptions sample_options() {
    FatOptions o;
    o.label = "bootfs";
    o.serial = 0x1234ABCD;
    o.mtime = {1704067200, 0}; // 2024-01-01
    return o;
}

// Everything every format must pass, whatever its type.
void check_image(const TempDir& tmp, const std::string& image, uint64_t size, const Tree& tree, const FatOptions& o,
                 const std::string& version) {
    Listing want = expected(tree, o.mtime);
    require_fsck_clean(image);
    require_blkid(image, o.label, "1234-ABCD", version);
    CHECK(diff(read_back(image, 0, size), want) == "");
    CHECK(diff(mcopy_listing(tmp, image, "mcopy-" + version), as_mtools_reads(want)) == "");
}

} // namespace

TEST_CASE("FAT32 at 64 MiB: names, contents and times as fsck.fat, mtools, blkid and the reader see them", "[fat]") {
    TempDir tmp;
    Tree tree = sample_tree();
    FatOptions o = sample_options();
    std::string img = write_image(tmp, "fat32.img", 64 * k_mib, tree, o);

    FatInfo info = info_of(img, 0, 64 * k_mib);
    CHECK(info.type == "FAT32");
    CHECK(info.cluster_size == 512);
    CHECK(info.clusters >= 65525);
    CHECK(info.label == "bootfs");
    CHECK(info.uuid() == "1234-ABCD");
    check_image(tmp, img, 64 * k_mib, tree, o, "FAT32");
    // fsck.fat's own count of used clusters is what sizing predicts: root, label and all.
    CHECK(fsck_used_clusters(img) * 512 == fat_content_bytes(tree, k_boot, 512));

    // Short names as Linux's vfat makes them, long names beside them; an upper-case 8.3 name alone.
    require_tool("mdir", "mtools");
    Run dir = run(mtools("mdir -i " + quote(img) + " ::/"));
    INFO(dir.output);
    CHECK(dir.status == 0);
    CHECK(dir.output.find("Volume in drive : is bootfs") != std::string::npos);
    CHECK(dir.output.find("Volume Serial Number is 1234-ABCD") != std::string::npos);
    auto line_of = [&](const std::string& name) -> std::string {
        size_t at = dir.output.find(name);
        if (at == std::string::npos) return "";
        size_t start = dir.output.rfind('\n', at) + 1;
        return dir.output.substr(start, dir.output.find('\n', at) - start);
    };
    CHECK(line_of("config.txt").rfind("CONFIG   TXT", 0) == 0);
    CHECK(line_of("README").rfind("README", 0) == 0);
    CHECK(line_of("README").find("  README") == std::string::npos); // no long name after it
    CHECK(line_of("café.txt").rfind("CAF_~1   TXT", 0) == 0);
    CHECK(line_of("a name with spaces.txt").rfind("ANAMEW~1 TXT", 0) == 0);
    CHECK(line_of("LONG_FILE_NAME_THAT_IS_LONG.dat").rfind("LONG_F~1 DAT", 0) == 0);
    CHECK(line_of("Mixed.Case.Name.tar.gz").rfind("MIXEDC~1 GZ", 0) == 0);
    CHECK(line_of("a+b[1].txt").rfind("A_B_1_~1 TXT", 0) == 0);
    CHECK(line_of(".hidden").rfind("HIDDEN~1", 0) == 0);

    // U+1F353 as its UTF-16 surrogate pair, little-endian, in the long name (mtools cannot tell).
    CHECK(slurp(img).find("\x3c\xd8\x53\xdf") != std::string::npos);

    Run type = run(mtools("mtype -i " + quote(img) + " " + quote("::/café.txt")));
    CHECK(type.status == 0);
    CHECK(type.output == "crème brûlée\n");
    Run recursive = run(mtools("mdir -/ -i " + quote(img) + " ::/"));
    CHECK(recursive.status == 0);
    CHECK(recursive.output.find("overlay-299.dtbo") != std::string::npos);
    CHECK(recursive.output.find("bottom.txt") != std::string::npos);

    // Folder times, which mcopy does not carry: the reader's.
    Tree back;
    read_fat(ImageFile::open(img), 0, 64 * k_mib, back, "/mnt");
    REQUIRE(back.get("/mnt/deep/a"));
    CHECK(back.get("/mnt/deep/a")->mtime.sec == fat_seconds(o.mtime));
    CHECK(back.get("/mnt/old.txt")->mtime.sec == 315532800);
    CHECK(back.get("/mnt/config.txt")->mtime.sec == 1700000000);
}

TEST_CASE("FAT32 at 512 MiB, Raspberry Pi OS's size, with 50 MB of content is written fast", "[fat]") {
    TempDir tmp;
    Tree tree;
    tree.put(k_boot + "/config.txt", file("arm_64bit=1\n"));
    for (int i = 0; i < 10; ++i)
        tree.put(k_boot + "/kernel" + std::to_string(i) + ".img", file(pattern(5'000'000, static_cast<uint32_t>(i))));
    FatOptions o = sample_options();

    auto start = std::chrono::steady_clock::now();
    std::string img = write_image(tmp, "pi.img", 512 * k_mib, tree, o);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO("write_fat took " << seconds << " s");
    CHECK(seconds < 1.5); // about 0.1 s here; the bound leaves room for a busy machine

    FatInfo info = info_of(img, 0, 512 * k_mib);
    CHECK(info.type == "FAT32");
    CHECK(info.cluster_size == 4096);
    check_image(tmp, img, 512 * k_mib, tree, o, "FAT32");
    struct stat st {};
    REQUIRE(::stat(img.c_str(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_size) == 512 * k_mib);
    CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 60 * k_mib); // sparse: only what was needed

    // pi-gen's choice of 2 KiB clusters.
    o.cluster_size = 2048;
    std::string pigen = write_image(tmp, "pigen.img", 512 * k_mib, tree, o);
    CHECK(info_of(pigen, 0, 512 * k_mib).cluster_size == 2048);
    require_fsck_clean(pigen);
}

TEST_CASE("FAT16 at 32 MiB, with a root folder beyond 512 entries", "[fat]") {
    TempDir tmp;
    Tree tree = sample_tree();
    for (int i = 0; i < 600; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "/F%03d.TXT", i);
        tree.put(k_boot + name, file(std::to_string(i)));
    }
    FatOptions o = sample_options();
    std::string img = write_image(tmp, "fat16.img", 32 * k_mib, tree, o);
    FatInfo info = info_of(img, 0, 32 * k_mib);
    CHECK(info.type == "FAT16");
    CHECK(info.cluster_size == 512);
    check_image(tmp, img, 32 * k_mib, tree, o, "FAT16");
}

TEST_CASE("FAT12 at 2 MiB", "[fat]") {
    TempDir tmp;
    Tree tree = sample_tree(false);
    FatOptions o = sample_options();
    std::string img = write_image(tmp, "fat12.img", 2 * k_mib, tree, o);
    FatInfo info = info_of(img, 0, 2 * k_mib);
    CHECK(info.type == "FAT12");
    check_image(tmp, img, 2 * k_mib, tree, o, "FAT12");
}

TEST_CASE("FAT type and cluster size follow the partition size", "[fat]") {
    TempDir tmp;
    Tree tree;
    tree.put(k_boot + "/config.txt", file("x"));
    FatOptions o = sample_options();
    struct Case {
        uint64_t size;
        int bits; // 0: choose
        std::string type;
        uint32_t cluster_size;
    };
    for (const Case& c : {Case{34 * k_mib, 0, "FAT32", 512}, Case{100 * k_mib, 0, "FAT32", 1024},
                          Case{64 * k_mib + 512 * 1024, 0, "FAT32", 512}, // 1 KiB: 65516 clusters, too few
                          Case{300 * k_mib, 0, "FAT32", 4096}, Case{3 * k_mib, 0, "FAT16", 512},
                          Case{64 * k_mib, 16, "FAT16", 1024}, Case{600 * k_mib, 16, "FAT16", 16384},
                          Case{k_mib, 0, "FAT12", 512}}) {
        o.fat_bits = c.bits;
        std::string img = write_image(tmp, "t.img", c.size, tree, o);
        FatInfo info = info_of(img, 0, c.size);
        INFO(c.size << " bytes, asked FAT" << c.bits);
        CHECK(info.type == c.type);
        CHECK(info.cluster_size == c.cluster_size);
        require_fsck_clean(img);
        CHECK(diff(read_back(img, 0, c.size), expected(tree, o.mtime)) == "");
    }
}

TEST_CASE("the same tree and options give the same bytes", "[fat]") {
    TempDir tmp;
    Tree tree = sample_tree();
    FatOptions o = sample_options();
    std::string a = write_image(tmp, "a.img", 64 * k_mib, tree, o);
    std::string b = write_image(tmp, "b.img", 64 * k_mib, tree, o);
    o.serial = 0x1234ABCE;
    std::string c = write_image(tmp, "c.img", 64 * k_mib, tree, o);
    std::string ha = std::move(sha256_file(a)).value_or_throw();
    CHECK(ha == std::move(sha256_file(b)).value_or_throw());
    CHECK(ha != std::move(sha256_file(c)).value_or_throw());
}

TEST_CASE("only the partition's bytes are written, and old bytes in it do no harm", "[fat]") {
    TempDir tmp;
    std::string img = tmp.path() + "/disk.img";
    const uint64_t offset = k_mib, size = 4 * k_mib;
    std::ofstream(img, std::ios::binary) << std::string(6 * k_mib, '\xAA'); // a used card, not zeros
    Tree tree = sample_tree(false);
    FatOptions o = sample_options();
    o.hidden_sectors = static_cast<uint32_t>(offset / 512);
    int fd = ::open(img.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    write_fat(fd, offset, size, tree, k_boot, o);
    ::close(fd);

    std::string all = slurp(img);
    REQUIRE(all.size() == 6 * k_mib);
    CHECK(all.substr(0, offset) == std::string(offset, '\xAA'));
    CHECK(all.substr(offset + size) == std::string(6 * k_mib - offset - size, '\xAA'));
    CHECK(diff(read_back(img, offset, size), expected(tree, o.mtime)) == "");
    std::string part = tmp.write("part.img", all.substr(offset, size));
    require_fsck_clean(part);
    CHECK(diff(mcopy_listing(tmp, part, "out"), as_mtools_reads(expected(tree, o.mtime))) == "");
    // The boot sector records where the partition starts.
    CHECK(static_cast<uint8_t>(all[offset + 28]) == 0x00);
    CHECK(static_cast<uint8_t>(all[offset + 29]) == 0x08); // 2048 sectors
}

TEST_CASE("empty boot folder and empty label", "[fat]") {
    TempDir tmp;
    Tree tree;
    tree.put(k_boot, dir());
    FatOptions o = sample_options();
    o.label.clear();
    std::string img = write_image(tmp, "empty.img", 64 * k_mib, tree, o);
    require_fsck_clean(img);
    CHECK(info_of(img, 0, 64 * k_mib).label == "");
    CHECK(read_back(img, 0, 64 * k_mib).empty());
    CHECK(mcopy_listing(tmp, img, "out").empty());
}

TEST_CASE("content bytes count whole clusters of files and folders", "[fat]") {
    Tree tree;
    tree.put(k_boot + "/A.TXT", file("a"));
    tree.put(k_boot + "/B.TXT", file(std::string(513, 'b')));
    tree.put(k_boot + "/SUB/C.TXT", file(""));
    // Root (label + 3 entries) 1 cluster, SUB 1, A 1, B 2 or 1, C none.
    CHECK(fat_content_bytes(tree, k_boot, 512) == 5 * 512);
    CHECK(fat_content_bytes(tree, k_boot, 4096) == 4 * 4096);
    CHECK_THROWS_WITH(fat_content_bytes(tree, k_boot, 1000),
                      "FAT: cluster size 1000 is not a power of two from 512 to 65536");
}

TEST_CASE("what FAT cannot hold is an Error naming the path, and nothing is written", "[fat]") {
    TempDir tmp;
    FatOptions o = sample_options();
    auto fails = [&](const Tree& tree, uint64_t size = 64 * k_mib) {
        std::string p = tmp.path() + "/err.img";
        std::ofstream(p, std::ios::binary) << "untouched";
        std::string message;
        try {
            int fd = ::open(p.c_str(), O_RDWR);
            REQUIRE(fd >= 0);
            try {
                write_fat(fd, 0, size, tree, k_boot, o);
            } catch (...) {
                ::close(fd);
                throw;
            }
            ::close(fd);
        } catch (const Error& e) {
            message = e.what();
        }
        CHECK(slurp(p) == "untouched");
        return message;
    };
    Tree base;
    base.put(k_boot + "/config.txt", file("x"));

    Tree t = base;
    Entry fifo;
    fifo.type = FileType::Fifo;
    t.put(k_boot + "/sub/pipe", fifo);
    CHECK(fails(t) == "cannot write '/boot/firmware/sub/pipe' to FAT: it is a fifo, and FAT holds only files and folders");

    t = base;
    t.put(k_boot + "/a:b", file("x"));
    CHECK(fails(t) == "cannot write '/boot/firmware/a:b' to FAT: its name contains ':', which FAT names cannot hold");
    t = base;
    t.put(k_boot + "/tab\there", file("x"));
    CHECK(fails(t) ==
          "cannot write '/boot/firmware/tab\\there' to FAT: its name contains a control character");
    t = base;
    t.put(k_boot + "/trailing.", file("x"));
    CHECK(fails(t) == "cannot write '/boot/firmware/trailing.' to FAT: its name ends with a dot or space, which FAT drops");
    t = base;
    t.put(k_boot + "/bad\xff", file("x"));
    CHECK(fails(t) == "cannot write '/boot/firmware/bad\\xff' to FAT: its name is not valid UTF-8");
    t = base;
    t.put(k_boot + "/" + std::string(256, 'x'), file("x"));
    CHECK(fails(t) == "cannot write '/boot/firmware/" + std::string(256, 'x') +
                          "' to FAT: its name is longer than FAT's 255 characters");
    t = base;
    t.put(k_boot + "/Config.txt", file("x"));
    CHECK(fails(t) == "cannot write '/boot/firmware/config.txt' to FAT: '/boot/firmware/Config.txt' has the same name "
                      "but for case, and FAT folders ignore case");

    t = base;
    t.put(k_boot + "/dangling", link("nowhere"));
    CHECK(fails(t) == "cannot write '/boot/firmware/dangling' to FAT: it is a symlink to 'nowhere', which is not in the image");
    t = base;
    t.put(k_boot + "/sub/up", link(".."));
    CHECK(fails(t) == "cannot write '/boot/firmware/sub/up' to FAT: it links to '/boot/firmware', a folder that "
                      "contains it, and FAT cannot hold the loop");
    t = base;
    t.put(k_boot + "/huge", Entry::file(std::make_shared<const Huge>(), 0644, {}));
    CHECK(fails(t) == "cannot write '/boot/firmware/huge' to FAT: it has 4294967296 bytes, and FAT files hold at most 4 GiB - 1");

    Tree none;
    CHECK(fails(none) == "cannot write '/boot/firmware' to FAT: it is not a folder in the image");

    t = base;
    t.put(k_boot + "/kernel8.img", file(std::string(3'000'000, 'k')));
    CHECK(fails(t, 2 * k_mib) == "the content of '/boot/firmware' needs 3000832 bytes (2.9 MiB, 5861 clusters of 512 "
                                 "bytes) as FAT12, but a 2097152-byte partition holds 2067968 (4039 clusters)");

    o.fat_bits = 32;
    CHECK(fails(base, 2 * k_mib) == "a FAT filesystem of 2097152 bytes: cannot be FAT32 (FAT12 holds at most 4084 "
                                    "clusters, FAT16 4087 to 65524, FAT32 65525 or more)");
    o.fat_bits = 0;
    CHECK(fails(base, 16 * 1024) == "a FAT filesystem of 16384 bytes: no FAT type fits it (FAT12 holds at most 4084 "
                                    "clusters, FAT16 4087 to 65524, FAT32 65525 or more)");
    o.label = "boot.fs";
    CHECK(fails(base) == "FAT: volume label 'boot.fs' holds '.'; labels are printable ASCII without * ? . , ; : / \\ | + "
                         "= < > [ ] \"");
    o.label = "twelve chars";
    CHECK(fails(base) == "FAT: volume label 'twelve chars' is longer than 11 characters");
}
