#include "ext/guestfs.hpp"

#ifdef IMGBUILD_HAVE_GUESTFS

#include "core/content.hpp"
#include "core/log.hpp"
#include "ext/archive.hpp"

#include <guestfs.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <vector>

namespace ib::guestfs {

namespace {

struct Handle {
    guestfs_h* g = guestfs_create();
    ~Handle() {
        if (g) guestfs_close(g);
    }
};

std::vector<std::string> take(char** list) {
    std::vector<std::string> out;
    if (!list) return out;
    for (char** p = list; *p; ++p) {
        out.emplace_back(*p);
        free(*p);
    }
    free(list);
    return out;
}

} // namespace

bool available() { return true; }

Result<void> read(const std::string& image, const std::string& format, Tree& tree, std::string& boot_mount) {
    Handle h;
    if (!h.g) return fail("libguestfs: cannot create a handle");
    guestfs_set_error_handler(h.g, nullptr, nullptr); // errors are reported through our messages
    // No working KVM on many build machines: TCG always works, only slower.
    if (!std::getenv("LIBGUESTFS_BACKEND_SETTINGS")) setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", 0);
    auto error = [&](const std::string& what) {
        const char* e = guestfs_last_error(h.g);
        return fail("libguestfs: " + what + ": " + (e ? e : "unknown error"));
    };
    int r = format.empty() ? guestfs_add_drive_opts(h.g, image.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1)
                           : guestfs_add_drive_opts(h.g, image.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                                                    GUESTFS_ADD_DRIVE_OPTS_FORMAT, format.c_str(), -1);
    if (r != 0) return error("add '" + image + "'");
    log::info("starting the libguestfs appliance for '" + image + "' (this takes a while)");
    if (guestfs_launch(h.g) != 0) return error("launch the appliance");
    auto roots = take(guestfs_inspect_os(h.g));
    std::vector<std::pair<std::string, std::string>> mounts; // (mount point, device)
    if (!roots.empty()) {
        auto flat = take(guestfs_inspect_get_mountpoints(h.g, roots[0].c_str()));
        for (size_t i = 0; i + 1 < flat.size(); i += 2) mounts.emplace_back(flat[i], flat[i + 1]);
    } else {
        // Inspection recognises only complete OS installs: a bare root filesystem is still a root.
        auto flat = take(guestfs_list_filesystems(h.g)); // (device, type) pairs
        for (size_t i = 0; i + 1 < flat.size() && mounts.empty(); i += 2) {
            const std::string& type = flat[i + 1];
            if (type == "btrfs" || type == "xfs" || type.rfind("ext", 0) == 0) mounts.emplace_back("/", flat[i]);
        }
        if (mounts.empty()) return fail("libguestfs: no operating system or Linux filesystem found in '" + image + "'");
    }
    // Shortest mount point first, so that / comes before /boot.
    std::sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) { return a.first.size() < b.first.size(); });
    for (const auto& [mp, dev] : mounts) {
        if (guestfs_mount_ro(h.g, dev.c_str(), mp.c_str()) != 0) return error("mount " + dev + " at " + mp);
        if (mp == "/boot/firmware" || mp == "/boot") boot_mount = mp;
    }
    char tmpl[] = "/tmp/imgbuild-guestfs-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return fail(errno_message("libguestfs: temporary tarball", errno));
    ::close(fd);
    std::string tar = tmpl;
    r = guestfs_tar_out_opts(h.g, "/", tar.c_str(), GUESTFS_TAR_OUT_OPTS_NUMERICOWNER, 1, GUESTFS_TAR_OUT_OPTS_XATTRS, 1,
                             GUESTFS_TAR_OUT_OPTS_ACLS, 1, -1);
    if (r != 0) {
        ::unlink(tar.c_str());
        return error("copy the files out");
    }
    auto result = archive::read_tarball(tar, tree);
    ::unlink(tar.c_str()); // the spool holds the contents now
    return result;
}

} // namespace ib::guestfs

#else

namespace ib::guestfs {
bool available() { return false; }
Result<void> read(const std::string&, const std::string&, Tree&, std::string&) {
    return fail("this imgbuild was built without libguestfs (install libguestfs-dev and rebuild)");
}
} // namespace ib::guestfs

#endif
