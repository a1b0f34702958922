#include "ext/ext4_write.hpp"

#include "core/path.hpp"
#include "core/table_write.hpp"
#include "core/writer_support.hpp"

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <et/com_err.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <unistd.h>

namespace ib::ext4 {

namespace {

constexpr uint32_t k_block = 4096;
constexpr uint32_t k_inode_size = 256;
constexpr size_t k_data_buffer = 1 << 20; // bytes of a file gathered before one write to the image
constexpr blk64_t k_max_extent = 32768;    // blocks an initialised extent can map
constexpr size_t k_inode_extents = 4;      // extents that fit in the inode itself

// Folder blocks are built in memory as they lie on disk, and ext4 is little-endian.
static_assert(std::endian::native == std::endian::little, "folder blocks are built in the host's byte order");

std::string err(errcode_t code) { return error_message(code); }

void check(errcode_t code, const std::string& what) {
    if (code) throw Error(what + ": " + err(code));
}

// As check(), for "<what> '<path>'": the message is only made when there is an error (this runs a
// few times for every entry of a root).
void check(errcode_t code, const char* what, const std::string& p) {
    if (code) throw Error(std::string(what) + " '" + p + "': " + err(code));
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

// One run of a file's blocks: `count` blocks from `logical` on are stored from `physical` on.
struct Run {
    blk64_t logical = 0, physical = 0, count = 0;
};

// Writes regular files' data straight into the image with pwrite, in runs of contiguous blocks taken
// from a goal that moves forward as files are written, so that files lie one after another as they
// are walked. libext2fs's file API would allocate, map and write one 4 KiB block at a time, and that
// was most of the time a root took. The blocks are marked in use in libext2fs's bitmaps before they
// are written, and libext2fs never reads or caches them: its own I/O (metadata) and ours do not meet.
class DataWriter {
public:
    DataWriter(ext2_filsys fs, const std::string& image, uint64_t offset)
        : m_fs(fs), m_offset(offset), m_buf(new char[k_data_buffer]) {
        m_fd = ::open(image.c_str(), O_WRONLY | O_CLOEXEC);
        if (m_fd < 0) throw Error(errno_message("open '" + image + "'", errno));
    }
    ~DataWriter() { ::close(m_fd); }
    DataWriter(const DataWriter&) = delete;
    DataWriter& operator=(const DataWriter&) = delete;

    // Writes the data runs of `content` (holes stay unallocated) and returns where they went, in
    // logical order, each run at most one extent long. The last block is padded with zeros.
    std::vector<Run> write(const Content& content, const std::string& p) {
        m_runs.clear();
        m_filled = 0;
        uint64_t size = content.size(), next = 0;
        content.for_each_chunk([&](uint64_t offset, const char* data, size_t len) {
            // Blocks are mapped in the order they come: a piece before the last, or past the end, would
            // map a block twice or beyond the file.
            if (offset < next || offset + len > size)
                throw Error("write '" + p + "': " + content.describe() + " gave " + std::to_string(len) + " bytes at " +
                            std::to_string(offset) + ", out of order or outside its " + std::to_string(size) + " bytes");
            next = offset + len;
            add(offset, data, len, p);
        });
        if (m_filled > 0) flush(p);
        return m_runs;
    }

    // `count` blocks for a new object (logical blocks 0 to count - 1), not written yet.
    std::vector<Run> allocate(blk64_t count, const std::string& p) {
        std::vector<Run> runs;
        for (const Run& r : take(0, count, p)) add_run(runs, r);
        return runs;
    }

    // Writes the blocks that `runs` map from `data`, which holds logical blocks `first` on.
    void write_runs(const std::vector<Run>& runs, const char* data, blk64_t first, const std::string& p) {
        for (const auto& r : runs) {
            const char* from = data + (r.logical - first) * k_block;
            size_t len = r.count * k_block;
            uint64_t at = m_offset + r.physical * k_block;
            ssize_t n = ::pwrite(m_fd, from, len, static_cast<off_t>(at));
            // The common case in one call; pwrite_all finishes short writes and names the failure.
            if (n != static_cast<ssize_t>(len)) {
                size_t done = n > 0 ? static_cast<size_t>(n) : 0;
                pwrite_all(m_fd, from + done, len - done, at + done, "the image, for '" + p + "'");
            }
        }
    }

    // `count` blocks of `data` for a new object, allocated and written.
    std::vector<Run> write_blocks(const char* data, blk64_t count, const std::string& p) {
        std::vector<Run> runs = allocate(count, p);
        write_runs(runs, data, 0, p);
        return runs;
    }

private:
    void add(uint64_t offset, const char* data, size_t len, const std::string& p) {
        uint64_t at = m_first * k_block + m_filled; // the byte after the gathered ones
        if (m_filled > 0 && offset != at) {
            uint64_t block_end = (at + k_block - 1) / k_block * k_block;
            if (offset > at && offset < block_end) { // a gap inside the last block: zeros
                std::memset(m_buf.get() + m_filled, 0, offset - at);
                m_filled += offset - at;
            } else {
                flush(p);
            }
        }
        if (m_filled == 0) {
            m_first = offset / k_block;
            m_filled = offset % k_block;
            std::memset(m_buf.get(), 0, m_filled);
        }
        while (len > 0) {
            if (m_filled == k_data_buffer) { // full, and so ending on a block boundary
                flush(p);
                m_first = offset / k_block;
            }
            size_t n = std::min(len, k_data_buffer - m_filled);
            std::memcpy(m_buf.get() + m_filled, data, n);
            m_filled += n;
            offset += n;
            data += n;
            len -= n;
        }
    }

    // Writes what is gathered to blocks allocated for it.
    void flush(const std::string& p) {
        blk64_t count = (m_filled + k_block - 1) / k_block;
        std::memset(m_buf.get() + m_filled, 0, count * k_block - m_filled);
        std::vector<Run> got = take(m_first, count, p);
        write_runs(got, m_buf.get(), m_first, p);
        for (const Run& r : got) add_run(m_runs, r);
        m_filled = 0;
    }

    // `count` free blocks, in as few runs as the free space allows, for logical blocks from `logical`
    // on: marked in use, the goal moved past them.
    std::vector<Run> take(blk64_t logical, blk64_t count, const std::string& p) {
        std::vector<Run> out;
        for (blk64_t done = 0; done < count;) {
            blk64_t physical = 0, got = 0;
            check(ext2fs_new_range(m_fs, 0, m_goal, count - done, nullptr, &physical, &got), "write", p);
            got = std::min(got, count - done);
            ext2fs_block_alloc_stats_range(m_fs, physical, got, +1);
            out.push_back({logical + done, physical, got});
            m_goal = physical + got;
            done += got;
        }
        return out;
    }

    // Appends `r` to `runs` as extents: joined to the last one where it continues it, split where an
    // extent would map more than it can.
    static void add_run(std::vector<Run>& runs, Run r) {
        if (!runs.empty()) {
            Run& last = runs.back();
            if (last.logical + last.count == r.logical && last.physical + last.count == r.physical) {
                blk64_t take = std::min(r.count, k_max_extent - last.count);
                last.count += take;
                r.logical += take;
                r.physical += take;
                r.count -= take;
            }
        }
        while (r.count > 0) {
            blk64_t take = std::min(r.count, k_max_extent);
            runs.push_back({r.logical, r.physical, take});
            r.logical += take;
            r.physical += take;
            r.count -= take;
        }
    }

    ext2_filsys m_fs;
    int m_fd = -1;
    uint64_t m_offset;
    std::unique_ptr<char[]> m_buf;
    blk64_t m_first = 0; // logical block of m_buf[0]
    size_t m_filled = 0; // bytes gathered in m_buf
    blk64_t m_goal = 0;  // where the next allocation starts looking
    std::vector<Run> m_runs;
};

// Writes the tree's entries. Files, links and devices get their inodes as the walk reaches them;
// folders get theirs then too, but their blocks are written at the end, once every entry is known:
// building each folder's blocks in one go is what mke2fs -d's one ext2fs_link per entry is not (it
// reads, checks and rewrites every block of the folder for every name it adds).
class Writer {
public:
    Writer(ext2_filsys fs, const Tree& tree, DataWriter& data) : m_fs(fs), m_leaders(tree), m_data(data) {}

    void root(const Entry& e) {
        ext2fs_inode_alloc_stats2(m_fs, EXT2_ROOT_INO, +1, 1);
        m_folder_of["/"] = m_folders.size();
        m_folders.push_back({EXT2_ROOT_INO, EXT2_ROOT_INO, &e, "/", {}, 0, 1});
    }

    void add(const std::string& p, const Entry& stored) {
        Folder& parent = m_folders.at(m_folder_of.at(path::parent(p)));
        std::string name(path::name(p));
        if (name.size() > EXT2_NAME_LEN) throw Error("'" + p + "': the name is longer than ext4's 255 bytes");
        const Entry& e = m_leaders.object(p, stored);
        if (const std::string* leader = m_leaders.link_to(p, stored)) {
            ext2_ino_t ino = m_files.at(*leader);
            parent.entries.push_back({name, ino, static_cast<uint8_t>(file_type(e.type))});
            struct ext2_inode inode {};
            check(ext2fs_read_inode(m_fs, ino, &inode), "read inode of", p);
            ++inode.i_links_count;
            check(ext2fs_write_inode(m_fs, ino, &inode), "write inode of", p);
            return;
        }
        ext2_ino_t parent_ino = parent.ino;
        ext2_ino_t ino = 0;
        check(ext2fs_new_inode(m_fs, parent_ino, mode_bits(e), nullptr, &ino), "no free inode for", p);
        ext2fs_inode_alloc_stats2(m_fs, ino, +1, e.type == FileType::Directory ? 1 : 0);
        parent.entries.push_back({name, ino, static_cast<uint8_t>(file_type(e.type))});
        if (e.type == FileType::Directory) {
            ++parent.subfolders;
            m_folder_of[p] = m_folders.size();
            // mke2fs makes lost+found 16 KiB so that e2fsck can reconnect files without allocating.
            m_folders.push_back({ino, parent_ino, &e, p, {}, 0, p == "/lost+found" ? 4u : 1u});
            return; // `parent` may dangle now
        }
        if (stored.type == FileType::Hardlink || stored.hardlinked) m_files[p] = ino;
        if (e.type == FileType::Regular) write_regular(ino, e, p);
        else if (e.type == FileType::Symlink) write_symlink(ino, e, p);
        else write_special(ino, e, p);
    }

    // Every folder's blocks and inode, now that their entries are all known.
    void finish_folders() {
        for (const Folder& f : m_folders) {
            check_interrupted();
            write_folder(f);
        }
    }

private:
    struct DirEntry {
        std::string name;
        ext2_ino_t ino;
        uint8_t type;
    };
    struct Folder {
        ext2_ino_t ino, parent;
        const Entry* meta;
        std::string path;
        std::vector<DirEntry> entries; // in walk order, "." and ".." not included
        uint32_t subfolders;
        uint32_t min_blocks;
    };

    // An inode buffer of the full on-disk size: written whole, nothing is read back first.
    union InodeBuf {
        struct ext2_inode_large large;
        char bytes[k_inode_size];
    };
    static_assert(sizeof(struct ext2_inode_large) <= k_inode_size);

    // Owner, mode and times (with nanoseconds) of a new inode.
    static void fill_meta(InodeBuf& buf, const Entry& e) {
        struct ext2_inode_large& inode = buf.large;
        inode.i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
        inode.i_mode = mode_bits(e);
        inode.i_uid = static_cast<uint16_t>(e.uid);
        inode.osd2.linux2.l_i_uid_high = static_cast<uint16_t>(e.uid >> 16);
        inode.i_gid = static_cast<uint16_t>(e.gid);
        inode.osd2.linux2.l_i_gid_high = static_cast<uint16_t>(e.gid >> 16);
        uint32_t secs = static_cast<uint32_t>(e.mtime.sec);
        // The kernel reads the seconds as signed 32 bits plus the extra epoch bits times 2^32
        // (ext4_decode_extra_time): from 2038 on, the epoch bits count from that signed value.
        int64_t epoch = (e.mtime.sec - static_cast<int64_t>(static_cast<int32_t>(secs))) >> 32;
        uint32_t extra = (e.mtime.nsec << 2) | (static_cast<uint32_t>(epoch) & 3);
        inode.i_atime = inode.i_ctime = inode.i_mtime = inode.i_crtime = secs;
        inode.i_atime_extra = inode.i_ctime_extra = inode.i_mtime_extra = inode.i_crtime_extra = extra;
        inode.i_links_count = 1;
    }

    void write_inode(ext2_ino_t ino, InodeBuf& buf, const std::string& p) {
        check(ext2fs_write_inode_full(m_fs, ino, reinterpret_cast<ext2_inode*>(&buf.large), k_inode_size), "write inode of", p);
    }

    void set_xattrs(ext2_ino_t ino, const Entry& e, const std::string& p) {
        if (e.xattrs.empty()) return;
        struct ext2_xattr_handle* h = nullptr;
        check(ext2fs_xattrs_open(m_fs, ino, &h), "xattrs of", p);
        errcode_t x = ext2fs_xattrs_read(h);
        std::string failed; // the xattr that could not be set, for the message
        for (const auto& [k, v] : e.xattrs) {
            if (x) break;
            // ACLs are handed over in the kernel's layout: libext2fs converts them to ext4's own.
            x = ext2fs_xattr_set(h, k.c_str(), v.data(), v.size());
            if (x) failed = k;
        }
        errcode_t closed = ext2fs_xattrs_close(&h); // writes them, in libext2fs versions that wait for close
        if (!x) x = closed;
        check(x, failed.empty() ? "set xattrs of" : ("set xattr " + failed + " of").c_str(), p);
    }

    // Writes the inode with `size` bytes mapped by `runs`: in the inode itself for up to four runs
    // (nearly every file, written in one piece), else in a tree that libext2fs builds, appending
    // each run after the last and counting the tree's own blocks in i_blocks.
    void write_mapped_inode(ext2_ino_t ino, InodeBuf& buf, uint64_t size, const std::vector<Run>& runs, const std::string& p) {
        auto* small = reinterpret_cast<ext2_inode*>(&buf.large);
        check(ext2fs_inode_size_set(m_fs, small, size), "size of", p);
        blk64_t blocks = 0;
        for (const auto& r : runs) blocks += r.count;
        check(ext2fs_iblk_set(m_fs, small, blocks), "block count of", p);
        small->i_flags = EXT4_EXTENTS_FL;
        auto* eh = reinterpret_cast<ext3_extent_header*>(small->i_block);
        eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        eh->eh_max = ext2fs_cpu_to_le16(k_inode_extents);
        if (runs.size() <= k_inode_extents) {
            auto* ex = reinterpret_cast<ext3_extent*>(eh + 1);
            for (const auto& r : runs) {
                ex->ee_block = ext2fs_cpu_to_le32(static_cast<uint32_t>(r.logical));
                ex->ee_len = ext2fs_cpu_to_le16(static_cast<uint16_t>(r.count));
                ex->ee_start = ext2fs_cpu_to_le32(static_cast<uint32_t>(r.physical));
                ex->ee_start_hi = ext2fs_cpu_to_le16(static_cast<uint16_t>(r.physical >> 32));
                ++ex;
            }
            eh->eh_entries = ext2fs_cpu_to_le16(static_cast<uint16_t>(runs.size()));
            write_inode(ino, buf, p);
            return;
        }
        write_inode(ino, buf, p);
        ext2_extent_handle_t handle = nullptr;
        check(ext2fs_extent_open2(m_fs, ino, small, &handle), "extents of", p);
        errcode_t x = 0;
        for (size_t i = 0; i < runs.size() && !x; ++i) {
            struct ext2fs_extent last {};
            if (i > 0) x = ext2fs_extent_get(handle, EXT2_EXTENT_LAST_LEAF, &last);
            struct ext2fs_extent extent {};
            extent.e_lblk = runs[i].logical;
            extent.e_pblk = runs[i].physical;
            extent.e_len = static_cast<__u32>(runs[i].count);
            if (!x) x = ext2fs_extent_insert(handle, i == 0 ? 0 : EXT2_EXTENT_INSERT_AFTER, &extent);
        }
        ext2fs_extent_free(handle);
        check(x, "extents of", p);
        write_inode(ino, buf, p);
    }

    // A regular file: its data first, then its inode, once.
    void write_regular(ext2_ino_t ino, const Entry& e, const std::string& p) {
        std::vector<Run> runs;
        if (e.content && e.size() > 0) runs = m_data.write(*e.content, p);
        InodeBuf buf{};
        fill_meta(buf, e);
        write_mapped_inode(ino, buf, e.size(), runs, p);
        set_xattrs(ino, e, p);
    }

    // Devices, fifos and sockets.
    void write_special(ext2_ino_t ino, const Entry& e, const std::string& p) {
        InodeBuf buf{};
        fill_meta(buf, e);
        if (e.type == FileType::CharDevice || e.type == FileType::BlockDevice) {
            // The kernel's old encoding when it fits, the new one in i_block[1] otherwise.
            if (e.rdev_major < 256 && e.rdev_minor < 256)
                buf.large.i_block[0] = e.rdev_major * 256 + e.rdev_minor;
            else
                buf.large.i_block[1] = (e.rdev_minor & 0xff) | (e.rdev_major << 8) | ((e.rdev_minor & ~0xffu) << 12);
        }
        write_inode(ino, buf, p);
        set_xattrs(ino, e, p);
    }

    // A target shorter than 60 bytes lives in the inode (a "fast" symlink), a longer one in a block.
    void write_symlink(ext2_ino_t ino, const Entry& e, const std::string& p) {
        if (e.link.size() >= k_block) throw Error("'" + p + "': the symlink target is longer than a block");
        InodeBuf buf{};
        fill_meta(buf, e);
        if (e.link.size() < sizeof buf.large.i_block) {
            std::memcpy(buf.large.i_block, e.link.data(), e.link.size());
            check(ext2fs_inode_size_set(m_fs, reinterpret_cast<ext2_inode*>(&buf.large), e.link.size()), "size of", p);
            write_inode(ino, buf, p);
        } else {
            std::vector<char> block(k_block, '\0');
            std::memcpy(block.data(), e.link.data(), e.link.size());
            std::vector<Run> runs = m_data.write_blocks(block.data(), 1, p);
            write_mapped_inode(ino, buf, e.link.size(), runs, p);
        }
        set_xattrs(ino, e, p);
    }

    // A folder's blocks: its entries packed in walk order after "." and "..", each block ending in
    // the checksum tail; then its inode, then the blocks with their checksums.
    void write_folder(const Folder& f) {
        const uint32_t usable = k_block - sizeof(struct ext2_dir_entry_tail);
        std::vector<char> blocks;
        uint32_t at = usable; // in the current block; `usable` starts a new block
        uint32_t last = 0;    // the current block's last entry
        auto close_block = [&] {
            if (blocks.empty()) return;
            char* b = blocks.data() + blocks.size() - k_block;
            if (at == 0) { // no entry: one empty entry spans the block
                auto* d = reinterpret_cast<ext2_dir_entry*>(b);
                check(ext2fs_set_rec_len(m_fs, usable, d), "folder", f.path);
            } else {
                auto* d = reinterpret_cast<ext2_dir_entry*>(b + last);
                check(ext2fs_set_rec_len(m_fs, usable - last, d), "folder", f.path);
            }
            ext2fs_initialize_dirent_tail(m_fs, reinterpret_cast<ext2_dir_entry_tail*>(b + usable));
        };
        auto put = [&](const std::string& name, ext2_ino_t ino, int type) {
            uint32_t len = (8 + static_cast<uint32_t>(name.size()) + 3) & ~3u;
            if (at + len > usable) {
                close_block();
                blocks.resize(blocks.size() + k_block, '\0');
                at = 0;
            }
            auto* d = reinterpret_cast<ext2_dir_entry*>(blocks.data() + blocks.size() - k_block + at);
            d->inode = ino;
            check(ext2fs_set_rec_len(m_fs, len, d), "folder", f.path);
            ext2fs_dirent_set_name_len(d, static_cast<int>(name.size()));
            ext2fs_dirent_set_file_type(d, type);
            std::memcpy(d->name, name.data(), name.size());
            last = at;
            at += len;
        };
        put(".", f.ino, EXT2_FT_DIR);
        put("..", f.parent, EXT2_FT_DIR);
        for (const auto& e : f.entries) put(e.name, e.ino, e.type);
        close_block();
        while (blocks.size() < f.min_blocks * k_block) {
            blocks.resize(blocks.size() + k_block, '\0');
            at = 0;
            close_block();
        }
        blk64_t count = blocks.size() / k_block;

        InodeBuf buf{};
        fill_meta(buf, *f.meta);
        // With dir_nlink, a folder with too many subfolders to count says 1.
        uint32_t links = 2 + f.subfolders;
        buf.large.i_links_count = static_cast<uint16_t>(links > EXT2_LINK_MAX ? 1 : links);
        std::vector<Run> runs = m_data.allocate(count, f.path);
        write_mapped_inode(f.ino, buf, count * k_block, runs, f.path);
        for (blk64_t i = 0; i < count; ++i)
            check(ext2fs_dir_block_csum_set(m_fs, f.ino, reinterpret_cast<ext2_dir_entry*>(blocks.data() + i * k_block)),
                  "checksum folder", f.path);
        m_data.write_runs(runs, blocks.data(), 0, f.path);
        set_xattrs(f.ino, *f.meta, f.path);
    }

    ext2_filsys m_fs;
    HardlinkLeaders m_leaders;
    DataWriter& m_data;
    std::vector<Folder> m_folders;
    std::map<std::string, size_t, path::Less> m_folder_of;
    std::map<std::string, ext2_ino_t, path::Less> m_files; // hardlink group leaders
};

struct Counts {
    uint64_t entries = 0;
    uint64_t data_blocks = 0;
};

constexpr uint64_t k_look_at_extents = 64ull << 20;

Counts count(const Tree& tree, const std::vector<std::string>& exclude) {
    Counts c;
    tree.walk([&](const std::string& p, const Entry& e) {
        if (excluded(p, exclude)) return;
        ++c.entries;
        if (e.type == FileType::Regular && e.content) {
            // Logical size, holes counted as data: an estimate, and no second look at most files'
            // extents (which costs an open and lseeks per host file). Big files are looked at: a
            // sparse 1 TiB one made a 1.2 TiB root whose inode tables alone took minutes to write.
            uint64_t data = e.size();
            if (data > k_look_at_extents) {
                data = 0;
                for (const auto& x : e.content->extents()) data += x.length;
            }
            c.data_blocks += (data + k_block - 1) / k_block;
            c.data_blocks += data / (k_block * 340) + 1; // extent tree blocks for fragmented files
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

        for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); ++i) ext2fs_inode_alloc_stats2(fs, i, +1, 0);
        ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
        ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
        check(ext2fs_update_bb_inode(fs, nullptr), "bad blocks inode");
        check(ext2fs_create_resize_inode(fs), "resize inode");

        DataWriter data(fs, image, offset);
        Writer w(fs, tree, data);
        bool has_lost_found = tree.get("/lost+found") && tree.get("/lost+found")->is_dir();
        tree.walk([&](const std::string& p, const Entry& entry) {
            check_interrupted();
            if (excluded(p, options.exclude)) return;
            if (p == "/") w.root(entry);
            else w.add(p, entry);
        });
        Entry lost_found = Entry::directory(0700, options.time); // outlives finish_folders()
        if (!has_lost_found) w.add("/lost+found", lost_found);
        w.finish_folders();

        struct ext2fs_journal_params jparams {};
        check(ext2fs_get_journal_params(&jparams, fs), "journal size");
        check(ext2fs_add_journal_inode3(fs, &jparams, ~0ULL, 0), "create the journal");
        sb->s_state |= EXT2_VALID_FS;
        // Groups whose bitmaps stay uninitialised are skipped when the bitmaps are written, and that is
        // where their descriptor checksums would be set: set them all, after the flags changed above.
        for (dgrp_t g = 0; g < fs->group_desc_count; ++g) ext2fs_group_desc_csum_set(fs, g);
        // No fsync: the image is a build output like any other, renamed into place when the build
        // succeeds; waiting for the disk here would only make the build slower.
        e = ext2fs_close2(fs, EXT2_FLAG_FLUSH_NO_SYNC);
        if (e) ext2fs_free(fs);
        fs = nullptr;
        if (e) return fail("ext4 at byte " + std::to_string(offset) + " of '" + image + "': writing: " + err(e));
    } catch (const Error& x) {
        if (fs) ext2fs_free(fs);
        return fail("ext4 at byte " + std::to_string(offset) + " of '" + image + "': " + x.what());
    }
    return {};
}

} // namespace ib::ext4
