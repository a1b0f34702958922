#include "core/writer_support.hpp"

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

} // namespace ib
