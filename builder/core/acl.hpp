// POSIX ACLs as the Tree keeps them: the Linux xattr values "system.posix_acl_access" and
// "system.posix_acl_default" (version 2 header, then {tag, perm, id} entries sorted by tag and id),
// the form the kernel's getxattr/setxattr and libext2fs use. Archives carry ACLs as entry lists; these
// convert between the two.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ib::acl {

inline constexpr const char* k_access = "system.posix_acl_access";
inline constexpr const char* k_default = "system.posix_acl_default";

enum Tag : uint16_t { UserObj = 0x01, User = 0x02, GroupObj = 0x04, Group = 0x08, Mask = 0x10, Other = 0x20 };
inline constexpr uint32_t k_no_id = 0xFFFFFFFF;

struct AclEntry {
    uint16_t tag = 0;
    uint16_t perm = 0; // r=4 w=2 x=1
    uint32_t id = k_no_id;
};

// Sorted, with the owner/group/other entries filled from `mode` when missing.
std::string encode(std::vector<AclEntry> entries, std::optional<uint32_t> mode);
// nullopt when the value is not a version 2 ACL.
std::optional<std::vector<AclEntry>> decode(const std::string& value);

// ext4 stores ACLs in a layout of its own (version 1 header; 4-byte entries for the owner, group,
// mask and other, 8 bytes with the id for named users and groups). libext2fs converts only in
// ext2fs_xattr_get, not for the values ext2fs_xattrs_iterate hands out, so a reader of ext4 must
// convert them itself. Returns the kernel's (version 2) value, the value itself when it is already
// version 2, or nullopt when it is neither: a truncated or unknown entry is never guessed at.
std::optional<std::string> from_ext4(const std::string& value);
// Whether `name` is one of the two ACL xattrs.
bool is_acl(const std::string& name);

} // namespace ib::acl
