#include "ext/ext2fs.hpp"

#include "core/acl.hpp"
#include "core/log.hpp"
#include "core/path.hpp"

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>
extern "C" {
#include <e2p/e2p.h> // has no extern "C" of its own
}

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace ib::ext2 {

namespace {

std::string io_name(const ImageFile& image, uint64_t offset) {
    // The unix io manager takes "path?offset=N": the filesystem is read in place inside the image.
    return image.path() + "?offset=" + std::to_string(offset);
}

std::string err(errcode_t code) { return error_message(code); }

// An open filesystem, shared by the contents that read from it. libext2fs is not thread-safe (the
// io channel's block cache, the inode cache): outputs read contents from several threads, so every
// use of the filesystem holds lock().
class Fs {
public:
    Fs(ext2_filsys fs, std::shared_ptr<const ImageFile> image, std::string what)
        : m_fs(fs), m_image(std::move(image)), m_what(std::move(what)) {}
    ~Fs() { ext2fs_close_free(&m_fs); }
    Fs(const Fs&) = delete;
    Fs& operator=(const Fs&) = delete;
    ext2_filsys get() const { return m_fs; }
    const std::string& what() const { return m_what; }
    std::mutex& lock() const { return m_lock; }

private:
    mutable std::mutex m_lock;
    ext2_filsys m_fs;
    std::shared_ptr<const ImageFile> m_image; // keeps the file the fs reads from alive
    std::string m_what;
};

class InodeContent final : public Content {
public:
    InodeContent(std::shared_ptr<const Fs> fs, ext2_ino_t ino, uint64_t size, std::string name)
        : m_fs(std::move(fs)), m_ino(ino), m_size(size), m_name(std::move(name)) {}
    uint64_t size() const override { return m_size; }

    std::vector<Extent> extents() const override {
        std::lock_guard<std::mutex> hold(m_fs->lock());
        ext2_filsys fs = m_fs->get();
        uint64_t bs = fs->blocksize, blocks = (m_size + bs - 1) / bs;
        std::vector<Extent> out;
        struct ext2_inode inode {};
        if (ext2fs_read_inode(fs, m_ino, &inode) != 0) return Content::extents();
        if (inode.i_flags & EXT4_INLINE_DATA_FL) return Content::extents();
        // Only what is allocated is visited: asking block by block up to the size took minutes for
        // a sparse file of a terabyte (fuzz_ext4: a 44 KiB image whose file claims such a size).
        std::vector<std::pair<uint64_t, uint64_t>> runs; // logical block, count
        if (inode.i_flags & EXT4_EXTENTS_FL) {
            ext2_extent_handle_t h = nullptr;
            if (ext2fs_extent_open2(fs, m_ino, &inode, &h) != 0) return Content::extents();
            struct ext2fs_extent ex {};
            errcode_t e = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &ex);
            // A damaged tree may repeat itself: never more leaves than blocks in the filesystem.
            for (uint64_t n = 0; !e && n <= ext2fs_blocks_count(fs->super); ++n) {
                if ((ex.e_flags & EXT2_EXTENT_FLAGS_LEAF) && !(ex.e_flags & EXT2_EXTENT_FLAGS_UNINIT) && ex.e_pblk != 0)
                    runs.emplace_back(ex.e_lblk, ex.e_len);
                e = ext2fs_extent_get(h, EXT2_EXTENT_NEXT_LEAF, &ex);
            }
            ext2fs_extent_free(h);
            if (e != EXT2_ET_EXTENT_NO_NEXT) return Content::extents();
        } else {
            auto visit = [](ext2_filsys, blk64_t* blocknr, e2_blkcnt_t count, blk64_t, int, void* data) -> int {
                if (count >= 0 && *blocknr != 0)
                    static_cast<std::vector<std::pair<uint64_t, uint64_t>>*>(data)->emplace_back(count, 1);
                return 0;
            };
            if (ext2fs_block_iterate3(fs, m_ino, BLOCK_FLAG_DATA_ONLY | BLOCK_FLAG_READ_ONLY, nullptr, visit, &runs) != 0)
                return Content::extents();
        }
        std::sort(runs.begin(), runs.end());
        for (const auto& [lblk, count] : runs) {
            if (lblk >= blocks) break;
            uint64_t start = lblk * bs, end = std::min<uint64_t>(std::min(lblk + count, blocks) * bs, m_size);
            if (!out.empty() && out.back().offset + out.back().length >= start) {
                uint64_t back_end = out.back().offset + out.back().length;
                if (end > back_end) out.back().length = end - out.back().offset;
            } else if (end > start) {
                out.push_back({start, end - start});
            }
        }
        return out;
    }

    void read(uint64_t offset, char* buf, size_t len) const override {
        std::lock_guard<std::mutex> hold(m_fs->lock());
        ext2_file_t file = nullptr;
        if (errcode_t e = ext2fs_file_open(m_fs->get(), m_ino, 0, &file))
            throw Error(describe() + ": " + err(e));
        errcode_t e = ext2fs_file_llseek(file, offset, EXT2_SEEK_SET, nullptr);
        while (!e && len > 0) {
            unsigned int got = 0;
            e = ext2fs_file_read(file, buf, static_cast<unsigned int>(std::min<size_t>(len, 1u << 20)), &got);
            if (!e && got == 0) {
                ext2fs_file_close(file);
                throw Error(describe() + ": file is shorter than its size");
            }
            buf += got;
            len -= got;
        }
        ext2fs_file_close(file);
        if (e) throw Error(describe() + ": " + err(e));
    }

    std::string describe() const override { return m_fs->what() + ": '" + m_name + "'"; }

private:
    std::shared_ptr<const Fs> m_fs;
    ext2_ino_t m_ino;
    uint64_t m_size;
    std::string m_name;
};

struct Walker {
    std::shared_ptr<const Fs> fs;
    Tree& tree;
    std::map<ext2_ino_t, std::string> seen; // inode -> first path, for hardlinks
    std::string failure;
    int depth = 0;
    std::map<ext2_ino_t, std::string> folders; // folder inode -> its path
    std::string flagged; // the first path with the immutable or append-only flag
    size_t flagged_count = 0;

    Entry entry_of(ext2_ino_t ino, const std::string& p, struct ext2_inode_large& inode) {
        Entry e;
        uint16_t mode = inode.i_mode;
        e.perm = mode & 07777;
        e.uid = inode_uid(inode);
        e.gid = inode_gid(inode);
        e.mtime = {static_cast<int64_t>(static_cast<int32_t>(inode.i_mtime)), 0};
        if (inode.i_extra_isize >= 24) { // i_mtime_extra is there: nanoseconds and epoch bits
            e.mtime.sec += static_cast<int64_t>(inode.i_mtime_extra & 3) << 32;
            e.mtime.nsec = inode.i_mtime_extra >> 2;
        }
        ext2_filsys f = fs->get();
        uint64_t size = EXT2_I_SIZE(&inode);
        if (LINUX_S_ISDIR(mode)) e.type = FileType::Directory;
        else if (LINUX_S_ISREG(mode)) {
            if (size) e.content = std::make_shared<InodeContent>(fs, ino, size, p);
        } else if (LINUX_S_ISLNK(mode)) {
            e.type = FileType::Symlink;
            e.link = read_link(ino, inode, size);
        } else if (LINUX_S_ISCHR(mode) || LINUX_S_ISBLK(mode)) {
            e.type = LINUX_S_ISCHR(mode) ? FileType::CharDevice : FileType::BlockDevice;
            // Old encoding in i_block[0], new (large numbers) in i_block[1].
            if (inode.i_block[0]) {
                e.rdev_major = (inode.i_block[0] >> 8) & 255;
                e.rdev_minor = inode.i_block[0] & 255;
            } else {
                uint32_t d = inode.i_block[1];
                e.rdev_major = (d & 0xfff00) >> 8;
                e.rdev_minor = (d & 0xff) | ((d >> 12) & 0xfff00);
            }
        } else if (LINUX_S_ISFIFO(mode)) e.type = FileType::Fifo;
        else if (LINUX_S_ISSOCK(mode)) e.type = FileType::Socket;
        read_xattrs(f, ino, p, e);
        if (inode.i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL)) {
            if (flagged.empty()) flagged = p;
            ++flagged_count;
        }
        return e;
    }

    std::string read_link(ext2_ino_t ino, struct ext2_inode_large& inode, uint64_t size) {
        ext2_filsys f = fs->get();
        if (size > 4096) throw Error(fs->what() + ": symlink inode " + std::to_string(ino) + " is too long");
        if (inode.i_flags & EXT4_INLINE_DATA_FL) {
            std::vector<char> buf(EXT2_I_SIZE(&inode) + 64);
            size_t got = 0;
            if (errcode_t e = ext2fs_inline_data_get(f, ino, reinterpret_cast<ext2_inode*>(&inode), buf.data(), &got))
                throw Error(fs->what() + ": symlink inode " + std::to_string(ino) + ": " + err(e));
            return std::string(buf.data(), std::min<size_t>(got, size));
        }
        if (ext2fs_is_fast_symlink(reinterpret_cast<ext2_inode*>(&inode)))
            return std::string(reinterpret_cast<const char*>(inode.i_block), size);
        std::string out(size, '\0');
        InodeContent(fs, ino, size, "symlink").read(0, out.data(), out.size());
        return out;
    }

    // Every xattr of the inode, ACLs in the kernel's layout; an xattr that cannot be read is an error,
    // never silently left out.
    void read_xattrs(ext2_filsys f, ext2_ino_t ino, const std::string& p, Entry& e) {
        if (!ext2fs_has_feature_xattr(f->super) && !ext2fs_has_feature_inline_data(f->super)) return;
        struct ext2_xattr_handle* h = nullptr;
        if (errcode_t x = ext2fs_xattrs_open(f, ino, &h))
            throw Error(fs->what() + ": xattrs of '" + p + "': " + err(x));
        errcode_t x = ext2fs_xattrs_read(h);
        if (!x) {
            ext2fs_xattrs_iterate(
                h,
                [](char* name, char* value, size_t len, void* data) -> int {
                    static_cast<Entry*>(data)->xattrs[name] = std::string(value, len);
                    return 0;
                },
                &e);
        }
        ext2fs_xattrs_close(&h);
        if (x) throw Error(fs->what() + ": xattrs of '" + p + "': " + err(x));
        // "system.data" holds the start of an inline-data file's bytes: content, not an attribute.
        e.xattrs.erase("system.data");
        for (const char* name : {acl::k_access, acl::k_default}) {
            auto it = e.xattrs.find(name);
            if (it == e.xattrs.end()) continue;
            auto kernel = acl::from_ext4(it->second);
            if (!kernel) throw Error(fs->what() + ": '" + p + "': " + name + " is not an ACL in ext4's layout");
            it->second = std::move(*kernel);
        }
    }

    void add(ext2_ino_t ino, const std::string& p) {
        check_interrupted();
        struct ext2_inode_large inode {};
        if (errcode_t e = ext2fs_read_inode_full(fs->get(), ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode))
            throw Error(fs->what() + ": inode " + std::to_string(ino) + " of '" + p + "': " + err(e));
        if (!LINUX_S_ISDIR(inode.i_mode) && inode.i_links_count > 1) {
            auto [it, fresh] = seen.emplace(ino, p);
            if (!fresh) {
                tree.link(p, it->second);
                return;
            }
        }
        Entry e = entry_of(ino, p, inode);
        bool is_dir = e.is_dir();
        if (p == "/" || tree.get(p)) {
            // The mount point itself: the filesystem's root replaces the folder's metadata.
            if (is_dir) tree.put(p, std::move(e));
        } else {
            tree.put(p, std::move(e));
        }
        if (!is_dir) return;
        // A folder has one parent. A second entry for it is damage, and following it anyway was
        // exponential (a folder holding two entries for itself: 2^256 visits before the depth limit).
        if (auto [it, fresh] = folders.emplace(ino, p); !fresh)
            throw Error(fs->what() + ": folder '" + p + "' is inode " + std::to_string(ino) + ", which '" + it->second +
                        "' already is (a damaged filesystem)");
        if (++depth > 256) throw Error(fs->what() + ": folders nested deeper than 256 at '" + p + "'");
        std::vector<std::pair<std::string, ext2_ino_t>> children;
        auto collect = [](ext2_ino_t, int, struct ext2_dir_entry* d, int, int, char*, void* data) -> int {
            auto* list = static_cast<std::vector<std::pair<std::string, ext2_ino_t>>*>(data);
            std::string name(d->name, ext2fs_dirent_name_len(d));
            if (name != "." && name != "..") list->emplace_back(name, d->inode);
            return 0;
        };
        if (errcode_t err_code = ext2fs_dir_iterate2(fs->get(), ino, 0, nullptr, collect, &children))
            throw Error(fs->what() + ": folder '" + p + "': " + err(err_code));
        std::sort(children.begin(), children.end());
        for (const auto& [name, child] : children) {
            if (name.find('/') != std::string::npos) throw Error(fs->what() + ": bad name in '" + p + "'");
            add(child, p == "/" ? "/" + name : p + "/" + name);
        }
        --depth;
    }
};

Result<ext2_filsys> open_fs(const ImageFile& image, uint64_t offset, const std::string& what) {
    initialize_ext2_error_table();
    ext2_filsys fs = nullptr;
    std::string name = io_name(image, offset);
    errcode_t e = ext2fs_open2(name.c_str(), nullptr, EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
                               unix_io_manager, &fs);
    if (e) return fail(what + ": cannot open the ext filesystem: " + err(e));
    return fs;
}

std::string uuid_string(const uint8_t* u) {
    char buf[40];
    snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
             u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    return buf;
}

} // namespace

Result<FsInfo> info(const ImageFile& image, uint64_t offset) {
    auto opened = open_fs(image, offset, "filesystem at byte " + std::to_string(offset));
    if (!opened) return fail(opened.error());
    ext2_filsys fs = opened.value();
    FsInfo out;
    auto* sb = fs->super;
    out.type = ext2fs_has_feature_extents(sb) || ext2fs_has_feature_64bit(sb) || ext2fs_has_feature_flex_bg(sb)
                   ? "ext4" : ext2fs_has_feature_journal(sb) ? "ext3" : "ext2";
    out.label = std::string(reinterpret_cast<const char*>(sb->s_volume_name), strnlen(reinterpret_cast<const char*>(sb->s_volume_name), sizeof sb->s_volume_name));
    out.uuid = uuid_string(sb->s_uuid);
    out.blocks = ext2fs_blocks_count(sb);
    out.free_blocks = ext2fs_free_blocks_count(sb);
    out.block_size = fs->blocksize;
    out.inodes = sb->s_inodes_count;
    for (int compat = 0; compat < 3; ++compat) {
        uint32_t mask = compat == 0 ? sb->s_feature_compat : compat == 1 ? sb->s_feature_incompat : sb->s_feature_ro_compat;
        for (int bit = 0; bit < 32; ++bit) {
            if (!(mask & (1u << bit))) continue;
            const char* name = e2p_feature2string(compat, 1u << bit);
            out.features += (out.features.empty() ? "" : " ") + std::string(name);
        }
    }
    ext2fs_close_free(&fs);
    return out;
}

Result<void> read_tree(const std::shared_ptr<const ImageFile>& image, uint64_t offset, const std::string& what,
                       Tree& tree, const std::string& mount) {
    auto opened = open_fs(*image, offset, what);
    if (!opened) return fail(opened.error());
    auto fs = std::make_shared<const Fs>(opened.value(), image, what + " of '" + image->name() + "'");
    if (ext2fs_has_feature_journal_needs_recovery(fs->get()->super))
        return fail(what + ": the ext4 journal needs recovery (the image was not cleanly unmounted); run "
                           "`e2fsck -fy` on a copy of the image first");
    try {
        Walker walker{fs, tree, {}, {}, 0, {}, {}, 0};
        tree.mkdirs(mount, Entry::directory(0755, tree.default_mtime()));
        walker.add(EXT2_ROOT_INO, tree.resolve(mount));
        // The Tree has no inode flags: outputs would drop them without a word.
        if (walker.flagged_count)
            log::warn(fs->what() + ": " + std::to_string(walker.flagged_count) + " file(s) have the immutable or append-only "
                      "flag (first: '" + walker.flagged + "'); no output keeps ext4 inode flags, they are dropped");
    } catch (const Error& e) {
        if (e.exit_code() == k_exit_interrupted) throw; // Ctrl-C is not a read failure: it exits 130
        return fail(e.what());
    }
    return {};
}

} // namespace ib::ext2
