#include "ext/ext4_write.hpp"

#include "core/path.hpp"
#include "core/writer_support.hpp"

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace ib::ext4 {

namespace {

constexpr uint32_t k_block = 4096;
constexpr uint32_t k_inode_size = 256;

std::string err(errcode_t code) { return error_message(code); }

void check(errcode_t code, const std::string& what) {
    if (code) throw Error(what + ": " + err(code));
}

bool excluded(const std::string& p, const std::vector<std::string>& exclude) {
    for (const auto& x : exclude)
        if (p != x && path::is_within(p, x)) return true;
    return false;
}

int file_type(FileType t) {
    switch (t) {
    case FileType::Directory: return EXT2_FT_DIR;
    case FileType::Symlink: return EXT2_FT_SYMLINK;
    case FileType::CharDevice: return EXT2_FT_CHRDEV;
    case FileType::BlockDevice: return EXT2_FT_BLKDEV;
    case FileType::Fifo: return EXT2_FT_FIFO;
    case FileType::Socket: return EXT2_FT_SOCK;
    default: return EXT2_FT_REG_FILE;
    }
}

uint16_t mode_bits(const Entry& e) {
    uint16_t type = 0;
    switch (e.type) {
    case FileType::Directory: type = LINUX_S_IFDIR; break;
    case FileType::Symlink: type = LINUX_S_IFLNK; break;
    case FileType::CharDevice: type = LINUX_S_IFCHR; break;
    case FileType::BlockDevice: type = LINUX_S_IFBLK; break;
    case FileType::Fifo: type = LINUX_S_IFIFO; break;
    case FileType::Socket: type = LINUX_S_IFSOCK; break;
    default: type = LINUX_S_IFREG; break;
    }
    return static_cast<uint16_t>(type | (e.type == FileType::Symlink ? 0777 : (e.perm & 07777)));
}

class Writer {
public:
    Writer(ext2_filsys fs, const Tree& tree) : m_fs(fs), m_leaders(tree) {}

    // Links `ino` into folder `dir`, growing the folder when its blocks are full.
    void link(ext2_ino_t dir, const std::string& name, ext2_ino_t ino, int type, const std::string& p) {
        errcode_t e = ext2fs_link(m_fs, dir, name.c_str(), ino, type);
        if (e == EXT2_ET_DIR_NO_SPACE) {
            check(ext2fs_expand_dir(m_fs, dir), "expand folder of '" + p + "'");
            e = ext2fs_link(m_fs, dir, name.c_str(), ino, type);
        }
        check(e, "link '" + p + "'");
    }

    // Owner, mode, times (with nanoseconds) and xattrs of an inode already written.
    void set_meta(ext2_ino_t ino, const Entry& e, const std::string& p) {
        struct ext2_inode_large inode {};
        check(ext2fs_read_inode_full(m_fs, ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode), "read inode of '" + p + "'");
        inode.i_mode = mode_bits(e);
        inode.i_uid = static_cast<uint16_t>(e.uid);
        inode.osd2.linux2.l_i_uid_high = static_cast<uint16_t>(e.uid >> 16);
        inode.i_gid = static_cast<uint16_t>(e.gid);
        inode.osd2.linux2.l_i_gid_high = static_cast<uint16_t>(e.gid >> 16);
        uint32_t secs = static_cast<uint32_t>(e.mtime.sec);
        uint32_t extra = (e.mtime.nsec << 2) | (static_cast<uint32_t>(e.mtime.sec >> 32) & 3);
        inode.i_atime = inode.i_ctime = inode.i_mtime = secs;
        if (inode.i_extra_isize >= 24) {
            inode.i_atime_extra = inode.i_ctime_extra = inode.i_mtime_extra = extra;
            inode.i_crtime = secs;
            inode.i_crtime_extra = extra;
        }
        check(ext2fs_write_inode_full(m_fs, ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode), "write inode of '" + p + "'");
        if (e.xattrs.empty()) return;
        struct ext2_xattr_handle* h = nullptr;
        check(ext2fs_xattrs_open(m_fs, ino, &h), "xattrs of '" + p + "'");
        errcode_t x = ext2fs_xattrs_read(h);
        for (const auto& [k, v] : e.xattrs)
            if (!x) x = ext2fs_xattr_set(h, k.c_str(), v.data(), v.size());
        ext2fs_xattrs_close(&h); // writes them
        check(x, "set xattrs of '" + p + "'");
    }

    ext2_ino_t new_inode(ext2_ino_t dir, const Entry& e, const std::string& p) {
        ext2_ino_t ino = 0;
        check(ext2fs_new_inode(m_fs, dir, mode_bits(e), nullptr, &ino), "no free inode for '" + p + "'");
        return ino;
    }

    void write_data(ext2_ino_t ino, const Entry& e, const std::string& p) {
        if (!e.content || e.size() == 0) return;
        ext2_file_t file = nullptr;
        check(ext2fs_file_open(m_fs, ino, EXT2_FILE_WRITE, &file), "open '" + p + "' for writing");
        errcode_t failure = 0;
        try {
            e.content->for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
                if (failure) return;
                failure = ext2fs_file_llseek(file, offset, EXT2_SEEK_SET, nullptr);
                while (!failure && len > 0) {
                    unsigned int wrote = 0;
                    failure = ext2fs_file_write(file, data, static_cast<unsigned int>(len), &wrote);
                    data += wrote;
                    len -= wrote;
                }
            });
            if (!failure) failure = ext2fs_file_set_size2(file, e.size());
        } catch (...) {
            ext2fs_file_close(file);
            throw;
        }
        errcode_t closed = ext2fs_file_close(file);
        check(failure ? failure : closed, "write '" + p + "'");
    }

    void add(const std::string& p, const Entry& stored) {
        ext2_ino_t dir = m_dirs.at(path::parent(p));
        std::string name(path::name(p));
        if (const std::string* leader = m_leaders.link_to(p, stored)) {
            ext2_ino_t ino = m_files.at(*leader);
            const Entry& e = m_leaders.object(p, stored);
            link(dir, name, ino, file_type(e.type), p);
            struct ext2_inode inode {};
            check(ext2fs_read_inode(m_fs, ino, &inode), "read inode of '" + p + "'");
            ++inode.i_links_count;
            check(ext2fs_write_inode(m_fs, ino, &inode), "write inode of '" + p + "'");
            return;
        }
        const Entry& e = m_leaders.object(p, stored);
        if (e.type == FileType::Directory) {
            ext2_ino_t ino = p == "/lost+found" ? lost_and_found() : new_inode(dir, e, p);
            if (p != "/lost+found") {
                errcode_t r = ext2fs_mkdir(m_fs, dir, ino, name.c_str());
                if (r == EXT2_ET_DIR_NO_SPACE) {
                    check(ext2fs_expand_dir(m_fs, dir), "expand folder of '" + p + "'");
                    r = ext2fs_mkdir(m_fs, dir, ino, name.c_str());
                }
                check(r, "mkdir '" + p + "'");
            }
            m_dirs[p] = ino;
            m_dir_meta.emplace_back(ino, &e, p);
            return;
        }
        if (e.type == FileType::Symlink) {
            ext2_ino_t ino = new_inode(dir, e, p);
            errcode_t r = ext2fs_symlink(m_fs, dir, ino, name.c_str(), e.link.c_str());
            if (r == EXT2_ET_DIR_NO_SPACE) {
                check(ext2fs_expand_dir(m_fs, dir), "expand folder of '" + p + "'");
                r = ext2fs_symlink(m_fs, dir, ino, name.c_str(), e.link.c_str());
            }
            check(r, "symlink '" + p + "'");
            set_meta(ino, e, p);
            return;
        }
        ext2_ino_t ino = new_inode(dir, e, p);
        link(dir, name, ino, file_type(e.type), p);
        ext2fs_inode_alloc_stats2(m_fs, ino, +1, 0);
        struct ext2_inode inode {};
        inode.i_mode = mode_bits(e);
        inode.i_links_count = 1;
        if (e.type == FileType::CharDevice || e.type == FileType::BlockDevice) {
            // The kernel's old encoding when it fits, the new one in i_block[1] otherwise.
            if (e.rdev_major < 256 && e.rdev_minor < 256)
                inode.i_block[0] = e.rdev_major * 256 + e.rdev_minor;
            else
                inode.i_block[1] = (e.rdev_minor & 0xff) | (e.rdev_major << 8) | ((e.rdev_minor & ~0xffu) << 12);
        }
        if (e.type == FileType::Regular && ext2fs_has_feature_extents(m_fs->super)) {
            ext2_extent_handle_t handle = nullptr;
            check(ext2fs_extent_open2(m_fs, ino, &inode, &handle), "extents of '" + p + "'");
            ext2fs_extent_free(handle);
        }
        check(ext2fs_write_new_inode(m_fs, ino, &inode), "write inode of '" + p + "'");
        if (e.type == FileType::Regular) write_data(ino, e, p);
        set_meta(ino, e, p);
        if (stored.type == FileType::Hardlink || stored.hardlinked) m_files[p] = ino;
    }

    void finish_dirs() {
        for (const auto& [ino, e, p] : m_dir_meta) set_meta(ino, *e, p);
    }

    void root(const Entry& e) {
        m_dirs["/"] = EXT2_ROOT_INO;
        m_dir_meta.emplace_back(EXT2_ROOT_INO, &e, "/");
    }

    // mke2fs makes lost+found 16 KiB so that e2fsck can reconnect files without allocating.
    ext2_ino_t lost_and_found() {
        check(ext2fs_mkdir(m_fs, EXT2_ROOT_INO, 0, "lost+found"), "mkdir /lost+found");
        ext2_ino_t ino = 0;
        check(ext2fs_lookup(m_fs, EXT2_ROOT_INO, "lost+found", 10, nullptr, &ino), "find /lost+found");
        for (int i = 1; i < 4; ++i) check(ext2fs_expand_dir(m_fs, ino), "expand /lost+found");
        return ino;
    }

private:
    ext2_filsys m_fs;
    HardlinkLeaders m_leaders;
    std::map<std::string, ext2_ino_t, path::Less> m_dirs;
    std::map<std::string, ext2_ino_t, path::Less> m_files; // hardlink group leaders
    std::vector<std::tuple<ext2_ino_t, const Entry*, std::string>> m_dir_meta;
};

struct Counts {
    uint64_t entries = 0;
    uint64_t data_blocks = 0;
};

Counts count(const Tree& tree, const std::vector<std::string>& exclude) {
    Counts c;
    tree.walk([&](const std::string& p, const Entry& e) {
        if (excluded(p, exclude)) return;
        ++c.entries;
        if (e.type == FileType::Regular && e.content) {
            // Logical size, holes counted as data: an estimate, and no second look at every file's
            // extents (which costs an open and lseeks per host file).
            c.data_blocks += (e.size() + k_block - 1) / k_block;
            c.data_blocks += e.size() / (k_block * 340) + 1; // extent tree blocks for fragmented files
        } else if (e.type == FileType::Directory) {
            c.data_blocks += 1;
        } else if (e.type == FileType::Symlink && e.link.size() >= 60) {
            c.data_blocks += 1;
        }
        if (!e.xattrs.empty()) c.data_blocks += 1;
    });
    return c;
}

} // namespace

uint64_t needed_bytes(const Tree& tree, const std::vector<std::string>& exclude) {
    Counts c = count(tree, exclude);
    uint64_t inodes = std::max<uint64_t>(c.entries * 2, 16384);
    uint64_t data = c.data_blocks * k_block;
    uint64_t itables = inodes * k_inode_size;
    uint64_t journal = data > (1ull << 30) ? 64ull << 20 : 32ull << 20;
    // Bitmaps, group descriptors, reserved GDT blocks and superblock backups: about 3%.
    return (data + itables + journal) * 103 / 100 + (8ull << 20);
}

Result<void> write(const Tree& tree, const std::string& image, uint64_t offset, uint64_t size, const Options& options) {
    initialize_ext2_error_table();
    struct ext2_super_block param {};
    ext2fs_blocks_count_set(&param, size / k_block);
    param.s_log_block_size = 2; // 4 KiB
    param.s_rev_level = EXT2_DYNAMIC_REV;
    param.s_inode_size = k_inode_size;
    param.s_log_groups_per_flex = 4;
    Counts c = count(tree, options.exclude);
    uint64_t inodes = options.inodes ? options.inodes : std::max<uint64_t>({c.entries * 2, 16384, size / 16384});
    param.s_inodes_count = static_cast<uint32_t>(std::min<uint64_t>(inodes, UINT32_MAX - 1));
    param.s_feature_compat = EXT3_FEATURE_COMPAT_HAS_JOURNAL | EXT2_FEATURE_COMPAT_EXT_ATTR |
                             EXT2_FEATURE_COMPAT_RESIZE_INODE | EXT2_FEATURE_COMPAT_DIR_INDEX;
    param.s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_FLEX_BG;
    param.s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
                                EXT4_FEATURE_RO_COMPAT_DIR_NLINK | EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE |
                                EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
    param.s_min_extra_isize = param.s_want_extra_isize = 32;

    ext2_filsys fs = nullptr;
    errcode_t e = ext2fs_initialize(image.c_str(), EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
    if (e) return fail("ext4 at byte " + std::to_string(offset) + " of '" + image + "': " + err(e));
    try {
        // As mke2fs -E offset=N: initialize takes a plain name, the offset is an io channel option.
        std::string io_options = "offset=" + std::to_string(offset);
        check(io_channel_set_options(fs->io, io_options.c_str()), "set offset");
        // Every time and identifier from the recipe, none from the clock or /dev/urandom.
        fs->now = static_cast<time_t>(options.time.sec);
        auto* sb = fs->super;
        sb->s_mkfs_time = sb->s_lastcheck = sb->s_wtime = static_cast<uint32_t>(options.time.sec);
        std::memcpy(sb->s_uuid, options.uuid.data(), 16);
        std::memcpy(sb->s_hash_seed, options.hash_seed.data(), 16);
        sb->s_def_hash_version = EXT2_HASH_HALF_MD4;
        sb->s_flags |= EXT2_FLAGS_UNSIGNED_HASH; // as on arm64, where char is unsigned
        std::strncpy(reinterpret_cast<char*>(sb->s_volume_name), options.label.c_str(), sizeof sb->s_volume_name);
        sb->s_max_mnt_count = static_cast<__u16>(-1);
        sb->s_checksum_type = EXT2_CRC32C_CHKSUM;
        ext2fs_init_csum_seed(fs);
        check(ext2fs_allocate_tables(fs), "allocate group tables");
        // The image file is new and sparse: inode tables read as zeros already.
        for (dgrp_t g = 0; g < fs->group_desc_count; ++g) ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);

        check(ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, nullptr), "make the root folder");
        for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); ++i) ext2fs_inode_alloc_stats2(fs, i, +1, 0);
        ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
        ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
        check(ext2fs_update_bb_inode(fs, nullptr), "bad blocks inode");
        check(ext2fs_create_resize_inode(fs), "resize inode");

        Writer w(fs, tree);
        bool has_lost_found = tree.get("/lost+found") && tree.get("/lost+found")->is_dir();
        tree.walk([&](const std::string& p, const Entry& entry) {
            check_interrupted();
            if (excluded(p, options.exclude)) return;
            if (p == "/") w.root(entry);
            else w.add(p, entry);
        });
        Entry lost_found = Entry::directory(0700, options.time); // outlives finish_dirs()
        if (!has_lost_found) w.add("/lost+found", lost_found);
        w.finish_dirs();

        struct ext2fs_journal_params jparams {};
        check(ext2fs_get_journal_params(&jparams, fs), "journal size");
        check(ext2fs_add_journal_inode3(fs, &jparams, ~0ULL, 0), "create the journal");
        sb->s_state |= EXT2_VALID_FS;
        // Groups whose bitmaps stay uninitialised are skipped when the bitmaps are written, and that is
        // where their descriptor checksums would be set: set them all, after the flags changed above.
        for (dgrp_t g = 0; g < fs->group_desc_count; ++g) ext2fs_group_desc_csum_set(fs, g);
        e = ext2fs_close_free(&fs);
        if (e) return fail("ext4 at byte " + std::to_string(offset) + " of '" + image + "': writing: " + err(e));
    } catch (const Error& x) {
        if (fs) ext2fs_free(fs);
        return fail("ext4 at byte " + std::to_string(offset) + " of '" + image + "': " + x.what());
    }
    return {};
}

} // namespace ib::ext4
