#include "core/writer_support.hpp"

#include "core/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace ib {

HardlinkLeaders::HardlinkLeaders(const Tree& tree) : m_tree(tree) {
    tree.walk([&](const std::string& p, const Entry& e) {
        if (e.type == FileType::Hardlink) m_first.emplace(e.link, p);
        else if (e.hardlinked) m_first.emplace(p, p);
    });
}

const std::string* HardlinkLeaders::link_to(const std::string& p, const Entry& stored) const {
    const std::string& key = stored.type == FileType::Hardlink ? stored.link : p;
    if (stored.type != FileType::Hardlink && !stored.hardlinked) return nullptr;
    auto it = m_first.find(key);
    if (it == m_first.end() || it->second == p) return nullptr;
    return &it->second;
}

const Entry& HardlinkLeaders::object(const std::string&, const Entry& stored) const {
    if (stored.type == FileType::Hardlink)
        if (const Entry* target = m_tree.get(stored.link)) return *target;
    return stored;
}

uint32_t output_file_mode(const Tree& tree) {
    bool secret = false;
    tree.walk([&](const std::string&, const Entry& e) {
        if ((e.type == FileType::Regular || e.type == FileType::Directory) && (e.perm & 04) == 0)
            secret = true;
    });
    return secret ? 0600 : 0644;
}

void create_output_file(const std::string& file, uint32_t mode) {
    int fd =
        ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0) throw Error(errno_message("create '" + file + "'", errno));
    ::close(fd);
}

} // namespace ib
