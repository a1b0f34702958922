#include "core/boot.hpp"

#include "core/error.hpp"

#include <sstream>

namespace ib {

std::optional<std::string> boot_dir(const Tree& tree) {
    if (const Entry* fstab = tree.find("/etc/fstab"); fstab && fstab->type == FileType::Regular) {
        std::stringstream in(read_all(fstab->content));
        std::string line;
        while (std::getline(in, line)) {
            std::stringstream fields(line);
            std::string spec, mount, type;
            if (!(fields >> spec >> mount >> type) || spec.empty() || spec[0] == '#') continue;
            if ((mount == "/boot/firmware" || mount == "/boot") && (type == "vfat" || type == "auto")) return mount;
        }
    }
    for (const char* dir : {"/boot/firmware", "/boot"}) {
        for (const char* file : {"config.txt", "cmdline.txt"}) {
            const Entry* e = tree.find(std::string(dir) + "/" + file);
            if (e && e->type == FileType::Regular) return std::string(dir);
        }
    }
    return std::nullopt;
}

std::string require_boot_dir(const Tree& tree, const std::string& what) {
    if (auto dir = boot_dir(tree)) return *dir;
    throw Error(what + " needs a Raspberry Pi boot partition, but the image has no /boot/firmware or /boot with "
                       "config.txt or cmdline.txt, and no vfat /boot line in /etc/fstab");
}

} // namespace ib
