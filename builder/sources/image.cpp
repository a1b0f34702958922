// A disk image on the host: plain, or compressed (.xz .zst .gz .bz2 .zip), optionally pinned by
// sha256. Compressed images are decoded once into the cache, so that a second build from the same
// base skips the decoding: a pinned one keyed by its pin (verified while it is decoded), an unpinned
// one by the file's identity on this host (file_identity below).
#include "core/cache.hpp"
#include "core/host_file.hpp"
#include "core/log.hpp"
#include "core/staging.hpp"
#include "ext/decode.hpp"
#include "ext/sha256.hpp"
#include "sources/source.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <sys/stat.h>

namespace ib {

namespace {

class ImageSource final : public Source {
public:
    ImageSource(std::string file, std::string sha256) : m_file(std::move(file)), m_sha256(std::move(sha256)) {}

    std::string describe() const override {
        return "image " + m_file + (m_sha256.empty() ? "" : " (sha256 " + m_sha256.substr(0, 12) + "…)");
    }

    Tree read(Timestamp) const override { // a filesystem lists every folder
        DiskImage image = open_disk_image(m_file, m_sha256);
        Tree tree = image.read();
        const ImageInfo& info = image.info();
        log::detail("image: " + info.table.scheme_name() + ", " + std::to_string(info.partitions.size()) +
                    " partitions, family " + info.family + ", boot at " +
                    (info.boot_mount.empty() ? std::string("(none)") : info.boot_mount));
        return tree;
    }

private:
    std::string m_file;
    std::string m_sha256;
};

std::string pin_mismatch(const std::string& file, const std::string& actual, const std::string& pin) {
    return "image '" + file + "' has sha256 " + actual + ", but the recipe pins " + pin;
}

// The cache key of an unpinned compressed image: the sha256 of what identifies the file on this host
// (canonical path, size, mtime in ns, inode, device), not of its content, so that finding the decoded
// copy costs a stat, not a read. Writing to the file or replacing it changes the key; so does moving
// it (the copy is then decoded again). Old entries stay in the cache until it is emptied.
std::string file_identity(const std::string& file) {
    std::error_code ec;
    std::string path = std::filesystem::canonical(file, ec).string();
    struct stat st {};
    if (ec || ::stat(path.c_str(), &st) != 0)
        throw Error(errno_message("image '" + file + "'", ec ? ec.value() : errno));
    uint64_t mtime_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u + static_cast<uint64_t>(st.st_mtim.tv_nsec);
    std::string id = path + '\0' + std::to_string(st.st_size) + '\0' + std::to_string(mtime_ns) + '\0' +
                     std::to_string(st.st_ino) + '\0' + std::to_string(st.st_dev);
    return sha256_hex(id);
}

} // namespace

DiskImage open_disk_image(const std::string& file, const std::string& sha256) {
    // Before any open: a FIFO would block it, /dev/zero would decode forever.
    if (auto why = host_file::refuse(file, true)) throw Error("image " + *why);
    std::string kind = decode::sniff(file);
    if (kind.empty()) {
        // A plain image is read in place: no decoding pass to hash on the way, so a pin costs a read.
        if (!sha256.empty()) {
            std::string actual = sha256_file(file).value_or_throw("base");
            if (actual != sha256) throw Error(pin_mismatch(file, actual, sha256));
        }
        return DiskImage::open(file);
    }
    // A pinned image is found in the cache by its pin, with no read of the file at all; the pin is
    // verified while the file is decoded, and a mismatch leaves nothing in the cache.
    std::string key = sha256.empty() ? "file-" + file_identity(file) : sha256;
    // The decoded copy's own sha256 is recorded when it is made and checked before each use (a stat
    // while the file is as it was, a full hash once it is not): a changed copy is decoded again.
    std::string decoded = cache::get_or_make_verified("decoded", key + ".img", [&](const std::string& temp) {
        log::info("decoding " + file + " (" + kind + ") into the cache");
        auto start = std::chrono::steady_clock::now();
        decode::InputDigest digest;
        // The decoded copy's own sha256, for the cache's record: taken on a thread of its own as the
        // image is written (hashing it afterwards added half the time of a .zst decode).
        std::optional<BackgroundChecksum> sum;
        auto final_bytes = [&](uint64_t n) {
            if (!sum) sum.emplace(temp);
            sum->ready(n);
        };
        auto result = decode::to_sparse_file(file, temp, sha256.empty() ? nullptr : &digest, final_bytes);
        // Checked before the decode's own failure: a corrupt file that is not the one pinned is
        // reported as not the one pinned.
        if (!sha256.empty() && digest.complete && digest.sha256 != sha256)
            throw Error(pin_mismatch(file, digest.sha256, sha256));
        decode::Decoded done = std::move(result).value_or_throw("image");
        if (sha256.empty() && "file-" + file_identity(file) != key)
            throw Error("image '" + file + "' changed while it was being decoded; run again");
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char buf[128];
        snprintf(buf, sizeof buf, "decoded %.1f MiB in %.2f s", static_cast<double>(done.size) / (1 << 20), secs);
        log::detail(buf + (done.member.empty() ? std::string() : " from zip member '" + done.member + "'"));
        return sum ? sum->result(done.size) : std::string(); // "": the cache hashes it
    });
    log::detail("image: using " + decoded);
    return DiskImage::open(decoded, file);
}

std::unique_ptr<Source> make_image_source(std::string file, std::string sha256) {
    return std::make_unique<ImageSource>(std::move(file), std::move(sha256));
}

} // namespace ib
