// Output `sdimage`: a disk image to flash, as pi-gen lays it out by default: an MBR (or GPT), the boot
// partition as FAT (label bootfs, 512 MiB) and the root filesystem as ext4 (label rootfs), partitions
// aligned to 8 MiB, the root sized to its content plus headroom.
//
//   - sdimage: {path: worker.img}
//   - sdimage: {path: "{{node.name}}.img", table: gpt, align: 4, boot_size: 256, root_size: 4096,
//               headroom: 512, disk_id: "0x1234abcd", power_of_two: true, bmap: true}
//
// Sizes are MiB. The disk signature (MBR) or GUIDs (GPT), the filesystem UUIDs and the FAT serial are
// derived from the recipe's name, the node and the path, or set with disk_id; every PARTUUID= in
// cmdline.txt and /etc/fstab is rewritten to match, and the image is refused when cmdline.txt's root=
// would name a partition that is not there. Where the base's fstab names a filesystem by UUID= or
// LABEL=, the new filesystem keeps that UUID or label, so the reference stays true. The file is sparse:
// only what holds data is written. With bmap (the default), NAME.img.bmap lists the data for bmaptool.
// A path ending in .img.zst, .img.xz or .img.gz is compressed (xz on every core); the .bmap still
// describes the plain image, as bmaptool expects.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/fat_write.hpp"
#include "core/log.hpp"
#include "core/staging.hpp"
#include "core/table_write.hpp"
#include "core/writer_support.hpp"
#include "ext/archive.hpp"
#include "ext/ext4_write.hpp"
#include "ext/sha256.hpp"
#include "outputs/output.hpp"

#include <cerrno>
#include <fcntl.h>
#include <optional>
#include <sstream>
#include <unistd.h>

namespace ib {

namespace {

constexpr uint64_t k_mib = 1ull << 20;
const char* const k_linux_guid = "0fc63daf-8483-4772-8e79-3d69d8477de4";
const char* const k_basic_data_guid = "ebd0a0a2-b9e5-4433-87c0-68b9b72699c7";

struct Layout {
    bool gpt = false;
    uint64_t align = 8 * k_mib, boot = 512 * k_mib, root = 0, headroom = 256 * k_mib;
    std::optional<uint32_t> disk_id;
    bool power_of_two = false;
    bool bmap = true;
    archive::TarOptions::Compression compression = archive::TarOptions::Compression::None;
};

// Everything that names the disk and its filesystems.
struct Identity {
    uint32_t signature = 0;
    std::array<uint8_t, 16> disk_guid{}, boot_guid{}, root_guid{}, root_uuid{}, hash_seed{};
    uint32_t fat_serial = 0;
    std::string boot_label = "bootfs", root_label = "rootfs";
    std::string boot_partuuid, root_partuuid;
};

enum class IdKind { Raw, Uuid, Guid };

// 16 bytes from the seed. A random-looking UUID says so: version 4, RFC 4122 variant. GPT stores its
// GUIDs with the first three fields little-endian, so there the version nibble sits in byte 7.
std::array<uint8_t, 16> derive16(const std::string& seed, const std::string& what, IdKind kind) {
    std::string h = sha256_hex(seed + "|" + what);
    std::array<uint8_t, 16> out{};
    for (size_t i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(std::stoul(h.substr(i * 2, 2), nullptr, 16));
    if (kind != IdKind::Raw) {
        size_t version = kind == IdKind::Guid ? 7 : 6;
        out[version] = static_cast<uint8_t>((out[version] & 0x0F) | 0x40);
        out[8] = static_cast<uint8_t>((out[8] & 0x3F) | 0x80);
    }
    return out;
}

std::string uuid_text(const std::array<uint8_t, 16>& u) { // RFC 4122 byte order, as ext4 stores it
    char b[40];
    snprintf(b, sizeof b, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
             u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    return b;
}

std::optional<std::array<uint8_t, 16>> parse_uuid(std::string s) {
    std::string hex;
    for (char c : s)
        if (c != '-') hex += c;
    if (hex.size() != 32 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return std::nullopt;
    std::array<uint8_t, 16> out{};
    for (size_t i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(std::stoul(hex.substr(i * 2, 2), nullptr, 16));
    return out;
}

std::string hex8(uint32_t v) {
    char b[16];
    snprintf(b, sizeof b, "%08x", v);
    return b;
}

std::string file_text(const Tree& tree, const std::string& p) {
    const Entry* e = tree.find(p);
    return e && e->type == FileType::Regular ? read_all(e->content) : std::string();
}

// Keeps the base's UUID= and LABEL= references true by taking them over.
void adopt_fstab_names(const std::string& fstab, const std::string& boot_mount, Identity& id) {
    std::stringstream in(fstab);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream f(line);
        std::string spec, mount;
        if (!(f >> spec >> mount) || spec[0] == '#') continue;
        bool root = mount == "/", boot = mount == boot_mount;
        if (!root && !boot) continue;
        if (spec.rfind("LABEL=", 0) == 0) (root ? id.root_label : id.boot_label) = spec.substr(6);
        if (spec.rfind("UUID=", 0) == 0) {
            std::string v = spec.substr(5);
            if (root) {
                if (auto u = parse_uuid(v)) id.root_uuid = *u;
            } else if (v.size() == 9 && v[4] == '-') {
                id.fat_serial = static_cast<uint32_t>(std::stoul(v.substr(0, 4) + v.substr(5), nullptr, 16));
            }
        }
    }
}

// PARTUUID=... in fstab lines for / and the boot mount, and root=PARTUUID=... in cmdline.txt.
std::string rewrite_fstab(const std::string& fstab, const std::string& boot_mount, const Identity& id) {
    std::stringstream in(fstab);
    std::string line, out;
    while (std::getline(in, line)) {
        std::stringstream f(line);
        std::string spec, mount;
        if ((f >> spec >> mount) && spec.rfind("PARTUUID=", 0) == 0 && (mount == "/" || mount == boot_mount)) {
            std::string now = "PARTUUID=" + (mount == "/" ? id.root_partuuid : id.boot_partuuid);
            line.replace(line.find(spec), spec.size(), now);
        }
        out += line + "\n";
    }
    if (!fstab.empty() && fstab.back() != '\n') out.pop_back();
    return out;
}

// The PARTUUID that the base's fstab mounts at "/", or "".
std::string fstab_root_partuuid(const std::string& fstab) {
    std::stringstream in(fstab);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream f(line);
        std::string spec, mount;
        if ((f >> spec >> mount) && mount == "/" && spec.rfind("PARTUUID=", 0) == 0) return spec.substr(9);
    }
    return {};
}

// root=PARTUUID=... follows the disk: an MBR "SIGNATURE-NN" keeps its partition number NN under the new
// signature; a GPT GUID that the base's fstab mounts at "/" becomes the new root's. Anything else is
// left as written, for check_root_arg to judge.
std::string rewrite_cmdline(const std::string& cmdline, const std::string& base_fstab, const Identity& id, bool gpt) {
    std::string out = cmdline;
    size_t at = out.find("root=PARTUUID=");
    if (at == std::string::npos || (at != 0 && out[at - 1] != ' ')) return out;
    size_t start = at + 14, end = out.find_first_of(" \n", start);
    if (end == std::string::npos) end = out.size();
    std::string value = out.substr(start, end - start);
    std::string now;
    bool mbr_form = value.size() == 11 && value[8] == '-' &&
                    value.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos;
    if (mbr_form && !gpt) now = id.root_partuuid.substr(0, 8) + value.substr(8);
    else if (!value.empty() && value == fstab_root_partuuid(base_fstab)) now = id.root_partuuid;
    if (!now.empty()) out.replace(start, end - start, now);
    return out;
}

// cmdline.txt's root= must name the new root filesystem.
void check_root_arg(const std::string& cmdline, const Identity& id, const std::string& what) {
    std::stringstream in(cmdline);
    std::string arg;
    while (in >> arg) {
        if (arg.rfind("root=", 0) != 0) continue;
        std::string v = arg.substr(5);
        bool ok = v == "PARTUUID=" + id.root_partuuid || v == "UUID=" + uuid_text(id.root_uuid) ||
                  v == "LABEL=" + id.root_label || v == "/dev/mmcblk0p2" || v == "/dev/sda2" || v == "/dev/vda2" ||
                  v == "/dev/nfs" || v.rfind("PARTLABEL=", 0) == 0;
        if (!ok)
            throw Error(what + ": cmdline.txt says " + arg + ", which names no partition of the new image (root is PARTUUID=" +
                        id.root_partuuid + ", UUID=" + uuid_text(id.root_uuid) + ", LABEL=" + id.root_label + ")");
    }
}

void write_bmap(const std::string& image, uint64_t size, const std::string& out) {
    int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(errno_message("open '" + image + "'", errno));
    constexpr uint64_t block = 4096;
    std::string ranges;
    uint64_t mapped = 0;
    std::vector<char> buf(1 << 20);
    off_t pos = 0;
    while (static_cast<uint64_t>(pos) < size) {
        off_t data = ::lseek(fd, pos, SEEK_DATA);
        if (data < 0) break;
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) hole = static_cast<off_t>(size);
        uint64_t first = static_cast<uint64_t>(data) / block, last = (static_cast<uint64_t>(hole) + block - 1) / block - 1;
        Sha256 h;
        for (uint64_t off = first * block; off < std::min(size, (last + 1) * block);) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), std::min(size, (last + 1) * block) - off));
            if (::pread(fd, buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
                ::close(fd);
                throw Error(errno_message("read '" + image + "'", errno));
            }
            h.update(buf.data(), n);
            off += n;
        }
        ranges += "        <Range chksum=\"" + h.hex() + "\"> " + std::to_string(first) +
                  (last > first ? "-" + std::to_string(last) : std::string()) + " </Range>\n";
        mapped += last - first + 1;
        pos = static_cast<off_t>((last + 1) * block);
    }
    ::close(fd);
    uint64_t blocks = (size + block - 1) / block;
    auto text = [&](const std::string& self_sum) {
        return "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n    <ImageSize> " + std::to_string(size) +
               " </ImageSize>\n    <BlockSize> " + std::to_string(block) + " </BlockSize>\n    <BlocksCount> " +
               std::to_string(blocks) + " </BlocksCount>\n    <MappedBlocksCount> " + std::to_string(mapped) +
               " </MappedBlocksCount>\n    <ChecksumType> sha256 </ChecksumType>\n    <BmapFileChecksum> " + self_sum +
               " </BmapFileChecksum>\n    <BlockMap>\n" + ranges + "    </BlockMap>\n</bmap>\n";
    };
    // The file's own checksum is taken with that field all zeros, then put in.
    std::string final_text = text(sha256_hex(text(std::string(64, '0'))));
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o < 0) throw Error(errno_message("create '" + out + "'", errno));
    pwrite_all(o, final_text.data(), final_text.size(), 0, out);
    ::close(o);
}

class SdImage final : public Output {
public:
    SdImage(std::string p, Layout layout) : m_layout(layout) { m_path = std::move(p); }
    std::string describe() const override {
        return "sdimage " + m_path + " (" + (m_layout.gpt ? "gpt" : "mbr") + ", boot " + std::to_string(m_layout.boot / k_mib) +
               " MiB, root " + (m_layout.root ? std::to_string(m_layout.root / k_mib) + " MiB" : std::string("auto")) + ")";
    }
    std::vector<std::string> areas() const override {
        if (!m_layout.bmap) return {m_path};
        return {m_path, raw_path() + ".bmap"};
    }
    std::vector<OutputTarget> targets(const NodeSpec*) const override {
        std::vector<OutputTarget> out;
        for (auto& a : areas()) out.push_back({a, false});
        return out;
    }

    void write(const Tree& base, Staging& staging, const OutputWriteEnv& env) const override {
        std::string what = "output 'sdimage' " + m_path;
        std::string boot_dir = require_boot_dir(base, what);
        Identity id = identity(base, boot_dir, env);

        // The tree as written: boot chain references rewritten to this image's identity.
        Tree tree = base.fork("sdimage");
        std::string fstab = file_text(tree, "/etc/fstab");
        if (!fstab.empty()) tree.write_file("/etc/fstab", rewrite_fstab(fstab, boot_dir, id));
        std::string cmdline_path = boot_dir + "/cmdline.txt";
        if (tree.exists(cmdline_path)) {
            std::string cmdline = rewrite_cmdline(file_text(tree, cmdline_path), fstab, id, m_layout.gpt);
            check_root_arg(cmdline, id, what);
            tree.write_file(cmdline_path, cmdline);
        }

        // Sizes: the boot partition as asked, the root from its content.
        uint64_t boot_start = m_layout.align;
        uint64_t boot_need = fat_content_bytes(tree, boot_dir, 4096) + 4 * k_mib;
        if (boot_need > m_layout.boot)
            throw Error(what + ": the boot files need about " + std::to_string(boot_need / k_mib + 1) + " MiB, boot_size is " +
                        std::to_string(m_layout.boot / k_mib) + " MiB");
        uint64_t root_start = boot_start + m_layout.boot;
        uint64_t root_need = ext4::needed_bytes(tree, {boot_dir});
        uint64_t root = m_layout.root ? m_layout.root : round_up(root_need + root_need / 5 + m_layout.headroom, m_layout.align);
        if (m_layout.root && root_need > root)
            throw Error(what + ": the root filesystem needs about " + std::to_string(root_need / k_mib + 1) + " MiB, root_size is " +
                        std::to_string(root / k_mib) + " MiB");
        check_file_sizes(tree, boot_dir, root, what);
        uint64_t total = root_start + root + (m_layout.gpt ? m_layout.align : 0); // GPT's backup sits after the root
        if (m_layout.power_of_two) {
            uint64_t p = 1;
            while (p < total) p <<= 1;
            root += p - total;
            total = p;
        }

        // A compressed image is written plain first, then compressed into place.
        bool compressed = m_layout.compression != archive::TarOptions::Compression::None;
        std::string temp = compressed ? staging.scratch_for(raw_path()) : staging.temp_for(m_path);
        uint32_t mode = output_file_mode(tree);
        int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
        if (fd < 0) throw Error(errno_message("create '" + temp + "'", errno));
        // SHA256SUMS's line for the image is taken by a thread of its own as the image is finished:
        // the table and the boot partition are hashed while the root is written, the root while the
        // bmap is made. Hashing it afterwards took as long as writing it.
        std::optional<BackgroundChecksum> sum;
        try {
            if (::ftruncate(fd, static_cast<off_t>(total)) != 0) throw Error(errno_message("size '" + temp + "'", errno));
            write_table(fd, temp, total, boot_start, root_start, root, id);
            FatOptions fat;
            fat.label = id.boot_label;
            fat.serial = id.fat_serial;
            fat.hidden_sectors = static_cast<uint32_t>(boot_start / 512);
            fat.mtime = env.now;
            write_fat(fd, boot_start, m_layout.boot, tree, boot_dir, fat);
            if (!compressed) {
                sum.emplace(temp);
                sum->ready(root_start);
            }
            ext4::Options ext;
            ext.label = id.root_label;
            ext.uuid = id.root_uuid;
            ext.hash_seed = id.hash_seed;
            ext.time = env.now;
            ext.exclude = {boot_dir};
            ext4::write(tree, temp, root_start, root, ext).value_or_throw(what);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        if (m_layout.bmap) write_bmap(temp, total, staging.temp_for(raw_path() + ".bmap"));
        if (sum) staging.set_checksum(temp, sum->result(total));
        if (compressed) {
            std::string packed = staging.temp_for(m_path);
            create_output_file(packed, mode);
            archive::compress_file(temp, packed, m_layout.compression, env.threads).value_or_throw(what);
        }
        log::detail(what + ": " + std::to_string(total / k_mib) + " MiB, disk id " +
                    (m_layout.gpt ? guid_string(id.disk_guid) : "0x" + hex8(id.signature)) + ", root " +
                    std::to_string(root / k_mib) + " MiB (content about " + std::to_string(root_need / k_mib) + " MiB)");
    }

private:
    static uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

    // The image's path without its compression suffix: where its .bmap goes.
    std::string raw_path() const {
        bool compressed = m_layout.compression != archive::TarOptions::Compression::None;
        return compressed ? m_path.substr(0, m_path.rfind(".img") + 4) : m_path;
    }

    // A file whose size (holes included) is more than the root partition could ever hold once the
    // file is written to: an error before anything is written, not an image of its size.
    static void check_file_sizes(const Tree& tree, const std::string& boot_dir, uint64_t root, const std::string& what) {
        std::string biggest;
        uint64_t size = 0;
        tree.walk([&](const std::string& p, const Entry& e) {
            if (e.type != FileType::Regular || e.size() <= size) return;
            if (p == boot_dir || p.starts_with(boot_dir + "/")) return;
            size = e.size();
            biggest = p;
        });
        if (size > root)
            throw Error(what + ": '" + biggest + "' is " + std::to_string(size) + " bytes, more than the root partition (" +
                        std::to_string(root / k_mib) + " MiB) can ever hold");
    }

    // The partition table: the boot partition (FAT) and the root (Linux), MBR or GPT.
    void write_table(int fd, const std::string& temp, uint64_t total, uint64_t boot_start, uint64_t root_start, uint64_t root,
                     const Identity& id) const {
        std::vector<NewPartition> parts(2);
        parts[0].start = boot_start;
        parts[0].size = m_layout.boot;
        parts[0].mbr_type = 0x0c;
        parts[0].gpt_type = k_basic_data_guid;
        parts[0].gpt_guid = id.boot_guid;
        parts[0].name = "bootfs";
        parts[1].start = root_start;
        parts[1].size = root;
        parts[1].mbr_type = 0x83;
        parts[1].gpt_type = k_linux_guid;
        parts[1].gpt_guid = id.root_guid;
        parts[1].name = "rootfs";
        if (m_layout.gpt) {
            write_gpt(fd, total, id.disk_guid, parts);
        } else {
            std::string mbr = make_mbr(id.signature, parts);
            pwrite_all(fd, mbr.data(), mbr.size(), 0, temp);
        }
    }

    Identity identity(const Tree& tree, const std::string& boot_dir, const OutputWriteEnv& env) const {
        Identity id;
        // The plain image's name: compressing it does not change which disk it is.
        std::string seed = env.identity + "|" + m_path.substr(0, m_path.rfind(".img") + 4);
        auto sig = derive16(seed, "disk signature", IdKind::Raw);
        id.signature = m_layout.disk_id ? *m_layout.disk_id
                                        : static_cast<uint32_t>(sig[0] | sig[1] << 8 | sig[2] << 16 | static_cast<uint32_t>(sig[3]) << 24);
        if (id.signature == 0) id.signature = 1; // 0 reads as "no signature" to some firmware
        id.disk_guid = derive16(seed, "disk guid", IdKind::Guid);
        id.boot_guid = derive16(seed, "boot guid", IdKind::Guid);
        id.root_guid = derive16(seed, "root guid", IdKind::Guid);
        id.root_uuid = derive16(seed, "root uuid", IdKind::Uuid);
        id.hash_seed = derive16(seed, "hash seed", IdKind::Uuid);
        auto serial = derive16(seed, "fat serial", IdKind::Raw);
        id.fat_serial = static_cast<uint32_t>(serial[0] | serial[1] << 8 | serial[2] << 16 | static_cast<uint32_t>(serial[3]) << 24);
        adopt_fstab_names(file_text(tree, "/etc/fstab"), boot_dir, id);
        if (m_layout.gpt) {
            id.boot_partuuid = guid_string(id.boot_guid);
            id.root_partuuid = guid_string(id.root_guid);
        } else {
            id.boot_partuuid = hex8(id.signature) + "-01";
            id.root_partuuid = hex8(id.signature) + "-02";
        }
        return id;
    }

    Layout m_layout;
};

} // namespace

std::unique_ptr<Output> parse_sdimage_output(const Doc& options, OutputParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto p = output_path(m, options, env);
    Layout layout;
    if (auto t = m.string("table")) {
        if (*t == "gpt") layout.gpt = true;
        else if (*t != "mbr") env.diag.error(options.find("table")->mark(), env.what + ": table '" + *t + "' is not mbr or gpt");
    }
    if (auto a = m.uint("align", 64)) {
        if (*a == 0 || (*a & (*a - 1)) != 0)
            env.diag.error(options.find("align")->mark(), env.what + ": align must be a power of two MiB (1 to 64)");
        else layout.align = *a * k_mib;
    }
    if (auto b = m.uint("boot_size", 1 << 20)) {
        if (*b < 32) env.diag.error(options.find("boot_size")->mark(), env.what + ": boot_size must be at least 32 MiB (FAT32)");
        else layout.boot = *b * k_mib;
    }
    if (auto r = m.uint("root_size", 1 << 24)) layout.root = *r * k_mib;
    if (auto h = m.uint("headroom", 1 << 24)) layout.headroom = *h * k_mib;
    if (auto d = m.string("disk_id")) {
        std::string v = *d;
        if (v.rfind("0x", 0) == 0) v = v.substr(2);
        if (v.size() != 8 || v.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            env.diag.error(options.find("disk_id")->mark(), env.what + ": disk_id '" + *d + "' is not 8 hex digits like 0x1234abcd");
        else layout.disk_id = static_cast<uint32_t>(std::stoul(v, nullptr, 16));
    }
    layout.power_of_two = m.boolean("power_of_two").value_or(false);
    layout.bmap = m.boolean("bmap").value_or(true);
    m.finish();
    if (layout.boot % layout.align != 0)
        env.diag.error(options.mark(), env.what + ": boot_size must be a multiple of align (" + std::to_string(layout.align / k_mib) + " MiB)");
    if (!p) return nullptr;
    auto ends = [&](const char* suffix) {
        std::string x = suffix;
        return p->size() > x.size() && p->compare(p->size() - x.size(), x.size(), x) == 0;
    };
    using C = archive::TarOptions::Compression;
    if (ends(".img.zst")) layout.compression = C::Zstd;
    else if (ends(".img.xz")) layout.compression = C::Xz;
    else if (ends(".img.gz")) layout.compression = C::Gzip;
    else if (!ends(".img"))
        env.diag.error(options.find("path")->mark(), env.what + ": path '" + *p + "' must end in .img, .img.zst, .img.xz or .img.gz");
    return std::make_unique<SdImage>(*p, layout);
}

} // namespace ib
