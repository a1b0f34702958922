// A disk image on the host: plain, or compressed (.xz .zst .gz .bz2 .zip), optionally pinned by
// sha256. Compressed images are decoded once into the cache, keyed by the input's sha256, so a second
// build from the same base skips the decoding.
#include "core/cache.hpp"
#include "core/log.hpp"
#include "ext/decode.hpp"
#include "ext/sha256.hpp"
#include "sources/source.hpp"

#include <chrono>

namespace ib {

namespace {

class ImageSource final : public Source {
public:
    ImageSource(std::string file, std::string sha256) : m_file(std::move(file)), m_sha256(std::move(sha256)) {}

    std::string describe() const override {
        return "image " + m_file + (m_sha256.empty() ? "" : " (sha256 " + m_sha256.substr(0, 12) + "…)");
    }

    Tree read() const override {
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

} // namespace

DiskImage open_disk_image(const std::string& file, const std::string& sha256) {
    std::string actual;
    if (!sha256.empty()) {
        actual = sha256_file(file).value_or_throw("base");
        if (actual != sha256)
            throw Error("image '" + file + "' has sha256 " + actual + ", but the recipe pins " + sha256);
    }
    std::string kind = decode::sniff(file);
    if (kind.empty()) return DiskImage::open(file);
    if (actual.empty()) actual = sha256_file(file).value_or_throw("image");
    std::string decoded = cache::get_or_make("decoded", actual + ".img", [&](const std::string& temp) {
        log::info("decoding " + file + " (" + kind + ") into the cache");
        auto start = std::chrono::steady_clock::now();
        auto result = decode::to_sparse_file(file, temp).value_or_throw("image");
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char buf[128];
        snprintf(buf, sizeof buf, "decoded %.1f MiB in %.2f s", static_cast<double>(result.size) / (1 << 20), secs);
        log::detail(buf + (result.member.empty() ? std::string() : " from zip member '" + result.member + "'"));
    });
    log::detail("image: using " + decoded);
    return DiskImage::open(decoded, file);
}

std::unique_ptr<Source> make_image_source(std::string file, std::string sha256) {
    return std::make_unique<ImageSource>(std::move(file), std::move(sha256));
}

} // namespace ib
