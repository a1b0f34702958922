#include "core/acl.hpp"

#include <algorithm>

namespace ib::acl {

std::string encode(std::vector<AclEntry> entries, std::optional<uint32_t> mode) {
    auto has = [&](uint16_t tag) {
        return std::any_of(entries.begin(), entries.end(), [&](const AclEntry& e) { return e.tag == tag; });
    };
    if (mode) {
        if (!has(UserObj)) entries.push_back({UserObj, static_cast<uint16_t>((*mode >> 6) & 7), k_no_id});
        if (!has(GroupObj)) entries.push_back({GroupObj, static_cast<uint16_t>((*mode >> 3) & 7), k_no_id});
        if (!has(Other)) entries.push_back({Other, static_cast<uint16_t>(*mode & 7), k_no_id});
    }
    std::sort(entries.begin(), entries.end(),
              [](const AclEntry& a, const AclEntry& b) { return a.tag != b.tag ? a.tag < b.tag : a.id < b.id; });
    std::string out;
    auto put = [&out](uint32_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    put(2, 4);
    for (const auto& e : entries) {
        put(e.tag, 2);
        put(e.perm, 2);
        put(e.tag == User || e.tag == Group ? e.id : k_no_id, 4);
    }
    return out;
}

std::optional<std::vector<AclEntry>> decode(const std::string& value) {
    auto get = [&value](size_t at, int bytes) {
        uint32_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(value[at + static_cast<size_t>(i)])) << (8 * i);
        return v;
    };
    if (value.size() < 4 || (value.size() - 4) % 8 != 0 || get(0, 4) != 2) return std::nullopt;
    std::vector<AclEntry> out;
    for (size_t at = 4; at < value.size(); at += 8)
        out.push_back({static_cast<uint16_t>(get(at, 2)), static_cast<uint16_t>(get(at + 2, 2)), get(at + 4, 4)});
    return out;
}

std::optional<std::string> from_ext4(const std::string& value) {
    if (decode(value)) return value;
    auto get = [&value](size_t at, int bytes) {
        uint32_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(value[at + static_cast<size_t>(i)])) << (8 * i);
        return v;
    };
    if (value.size() < 4 || get(0, 4) != 1) return std::nullopt;
    std::vector<AclEntry> entries;
    for (size_t at = 4; at < value.size();) {
        if (value.size() - at < 4) return std::nullopt;
        auto tag = static_cast<uint16_t>(get(at, 2));
        auto perm = static_cast<uint16_t>(get(at + 2, 2));
        if (tag == User || tag == Group) {
            if (value.size() - at < 8) return std::nullopt;
            entries.push_back({tag, perm, get(at + 4, 4)});
            at += 8;
        } else if (tag == UserObj || tag == GroupObj || tag == Mask || tag == Other) {
            entries.push_back({tag, perm, k_no_id});
            at += 4;
        } else {
            return std::nullopt;
        }
    }
    return encode(std::move(entries), std::nullopt);
}

bool is_acl(const std::string& name) { return name == k_access || name == k_default; }

} // namespace ib::acl
