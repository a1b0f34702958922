#include "outputs/folder_sync.hpp"

#include "core/error.hpp"
#include "core/path.hpp"
#include "core/staging.hpp"
#include "core/writer_support.hpp"
#include "ext/sha256.hpp"
#include "outputs/file_store.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace ib {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view k_header = "imgbuild manifest 1";
constexpr std::string_view k_temp_suffix = ".imgbuild-tmp";

char type_char(FileType t) {
    switch (t) {
    case FileType::Regular: return 'f';
    case FileType::Directory: return 'd';
    case FileType::Symlink: return 'l';
    case FileType::Hardlink: return 'h';
    case FileType::CharDevice: return 'c';
    case FileType::BlockDevice: return 'b';
    case FileType::Fifo: return 'p';
    case FileType::Socket: return 's';
    }
    return '?';
}

// The manifest type of what the host has, for a removal to check it is still what imgbuild wrote.
char host_type_char(mode_t m) {
    if (S_ISREG(m)) return 'f';
    if (S_ISDIR(m)) return 'd';
    if (S_ISLNK(m)) return 'l';
    if (S_ISCHR(m)) return 'c';
    if (S_ISBLK(m)) return 'b';
    if (S_ISFIFO(m)) return 'p';
    return 's';
}

const char* host_type_name(mode_t m) {
    if (S_ISLNK(m)) return "a symlink";
    if (S_ISDIR(m)) return "a folder";
    if (S_ISREG(m)) return "a file";
    return "a special file";
}

// Everything that makes the entry but its mtime, hashed: equal fingerprints, nothing to write.
std::string fingerprint_of(const Entry& e, bool shared, ContentSums& sums) {
    std::string s;
    auto add = [&](std::string_view v) {
        s += std::to_string(v.size());
        s += ':';
        s += v;
    };
    add(std::string(1, type_char(e.type)));
    add(std::to_string(e.perm));
    add(std::to_string(e.uid));
    add(std::to_string(e.gid));
    add(std::to_string(e.xattrs.size()));
    for (const auto& [k, v] : e.xattrs) {
        add(k);
        add(v);
    }
    add(e.link);
    add(std::to_string(e.rdev_major) + "," + std::to_string(e.rdev_minor));
    if (e.type == FileType::Regular) {
        add(sums.of(e));
        add(shared ? "store" : "copy");
    }
    return sha256_hex(s).substr(0, 32);
}

// The same, worked out once per regular file of the build (the nodes' trees share most of theirs).
std::string fingerprint(const Entry& e, bool shared, ContentSums& sums) {
    if (e.type != FileType::Regular) return fingerprint_of(e, shared, sums);
    return sums.derived(e, shared ? 'S' : 'C', [&] { return fingerprint_of(e, shared, sums); });
}

// Manifest paths are stored paths: a newline or a backslash in a name is escaped.
std::string escape(std::string_view p) {
    std::string out;
    for (char c : p) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::optional<std::string> unescape(std::string_view p) {
    std::string out;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] != '\\') {
            out += p[i];
            continue;
        }
        if (++i == p.size()) return std::nullopt;
        if (p[i] == '\\') out += '\\';
        else if (p[i] == 'n') out += '\n';
        else return std::nullopt;
    }
    return out;
}

bool valid_folder(std::string_view f) {
    if (f.empty() || f[0] == '/') return false;
    std::string p = "/" + std::string(f);
    for (auto part : path::split(p))
        if (part == "..") return false;
    return path::normalise(f) == p;
}

void check_call(int r, const std::string& what) {
    if (r != 0) throw Error(errno_message(what, errno));
}

} // namespace

std::string entry_fingerprint(const Entry& e, ContentSums& sums) { return fingerprint(e, false, sums); }

const ManifestEntries* Manifest::find(const std::string& folder) const {
    for (const auto& [f, entries] : folders)
        if (f == folder) return &entries;
    return nullptr;
}

std::string manifest_text(const Manifest& m, const std::string& comment) {
    std::string s(k_header);
    s += "\n# " + comment + "\n";
    for (const auto& [folder, entries] : m.folders) {
        s += "folder " + escape(folder) + "\n";
        for (const auto& [p, item] : entries) {
            s += item.type;
            s += ' ';
            s += item.fingerprint;
            s += ' ';
            s += escape(p);
            s += '\n';
        }
    }
    return s;
}

Manifest parse_manifest(std::string_view text, const std::string& file) {
    Manifest m;
    size_t line_no = 0;
    auto bad = [&](const std::string& why) { return Error(file + ":" + std::to_string(line_no) + ": " + why); };
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++line_no;
        if (line_no == 1) {
            if (line != k_header) throw bad("not an imgbuild manifest (the first line is not '" + std::string(k_header) + "')");
            continue;
        }
        if (line.empty() || line[0] == '#') continue;
        if (line.substr(0, 7) == "folder ") {
            auto f = unescape(line.substr(7));
            if (!f || !valid_folder(*f)) throw bad("folder '" + std::string(line.substr(7)) + "' is not a relative path without '..'");
            m.folders.emplace_back(*f, ManifestEntries{});
            continue;
        }
        // "T FINGERPRINT /path"
        size_t sp = line.find(' ', 2);
        std::string_view fp = sp == std::string_view::npos ? std::string_view() : line.substr(2, sp - 2);
        auto p = sp == std::string_view::npos ? std::nullopt : unescape(line.substr(sp + 1));
        if (m.folders.empty() || line.size() < 2 || line[1] != ' ' || std::string_view("dflcbpsh").find(line[0]) == std::string_view::npos ||
            (fp != "-" && (fp.size() != 32 || fp.find_first_not_of("0123456789abcdef") != std::string_view::npos)) || !p ||
            p->empty() || (*p)[0] != '/' || path::normalise(*p) != *p)
            throw bad("not a manifest entry: '" + std::string(line.substr(0, 200)) + "'");
        m.folders.back().second.emplace_back(*p, ManifestItem{line[0], std::string(fp)});
    }
    if (line_no == 0) throw Error(file + ": empty, not an imgbuild manifest");
    return m;
}

FolderSync::FolderSync(std::string dest, const ManifestEntries& old, FolderOptions options, ContentSums& sums, bool fresh)
    : m_dest(std::move(dest)), m_old_order(old), m_options(std::move(options)), m_sums(sums), m_fresh(fresh) {
    m_old.reserve(old.size());
    for (const auto& [p, item] : old) m_old.emplace(p, item);
}

std::string FolderSync::temp_beside(const std::string& target) {
    std::string dir = target.substr(0, target.rfind('/'));
    std::string name = target.substr(target.rfind('/') + 1);
    // A name near the 255-byte limit has no room for the suffix: a short name made from it instead.
    if (name.size() + k_temp_suffix.size() + 1 > 255) name = sha256_hex(name).substr(0, 32);
    std::string temp = dir + "/." + name + std::string(k_temp_suffix);
    // Making and removing a temporary moves the folder's mtime: discard() puts it back.
    struct stat st {};
    if (!m_folder_mtimes.count(dir) && ::lstat(dir.c_str(), &st) == 0) m_folder_mtimes.emplace(dir, st.st_mtim);
    remove_tree(temp); // a leftover of a build that was killed
    m_temps.push_back(temp);
    return temp;
}

void FolderSync::verify_folders_above(const std::string& stored) {
    std::string a, parent = path::parent(stored);
    for (auto part : path::split(parent)) {
        a += "/";
        a += part;
        if (m_real_dirs.count(a)) continue;
        std::string host = host_of(a);
        struct stat st {};
        if (::lstat(host.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            m_real_dirs.insert(a);
            continue;
        }
        std::string is = ::lstat(host.c_str(), &st) == 0 ? host_type_name(st.st_mode) : "missing";
        throw Error("'" + host + "' is " + is + " on the host, where the recipe has a folder holding what changed ('" +
                    stored + "'); imgbuild writes nothing through it or in its place, as the node may have made it so: "
                    "put the folder back, or remove '" + m_dest + "' to have it written afresh");
    }
}

bool FolderSync::folders_above_are_real(const std::string& stored) {
    try {
        verify_folders_above(stored);
        return true;
    } catch (const Error&) {
        return false;
    }
}

void FolderSync::check_owned_below(const std::string& stored, const std::string& host) const {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(host, ec), end; !ec && it != end; it.increment(ec)) {
        std::string below = stored + it->path().string().substr(host.size());
        if (!m_old.count(below))
            throw Error("'" + it->path().string() + "' was not written by imgbuild, and the recipe now has a non-folder where its folder '" +
                        host + "' is: move it away and build again");
    }
    if (ec) throw Error(errno_message("list '" + host + "'", ec.value()));
}

namespace {

// One thing write() makes on the host, in walk order. Folders are made first (in order: parents
// first), then every other object (on several threads: they need only their folder), then the later
// names of hardlink groups (they need the first).
struct Op {
    enum class Kind : uint8_t { Folder, Object, Link };
    Kind kind = Kind::Object;
    bool mine = false; // inside a folder this write made: it gets the builder's owner when created
    std::string host, stored;
    const Entry* entry = nullptr;
    std::string from; // Link: where the group's first object is on the host
};

// Calls f(batch, i) for every i in each range of `batches` ([first, last)), on `threads` threads (this
// one included), a range at a time in the order given, with batch = begin(range's index) made before
// its first; the first error stops the others and is rethrown here.
template <typename Begin, typename F>
void parallel_batches(const std::vector<std::pair<size_t, size_t>>& batches, int threads, Begin begin, F f) {
    std::atomic<size_t> next = 0;
    std::atomic<bool> failed = false;
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        try {
            for (size_t b; !failed && (b = next.fetch_add(1)) < batches.size();) {
                auto batch = begin(b);
                for (size_t i = batches[b].first; i < batches[b].second && !failed; ++i) f(batch, i);
            }
        } catch (...) {
            std::lock_guard lock(error_mutex);
            if (!error) error = std::current_exception();
            failed = true;
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::min<int>(threads, static_cast<int>(batches.size())); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

// A folder open for the names a batch makes in it (O_PATH: for the *at calls only).
class FolderFd {
public:
    explicit FolderFd(std::string_view dir) : m_fd(::open(std::string(dir).c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) {
        if (m_fd < 0) throw Error(errno_message("open '" + std::string(dir) + "'", errno));
    }
    ~FolderFd() { ::close(m_fd); }
    FolderFd(const FolderFd&) = delete;
    FolderFd& operator=(const FolderFd&) = delete;
    int get() const { return m_fd; }

private:
    int m_fd;
};

std::string_view folder_of(const std::string& host) { return std::string_view(host).substr(0, host.rfind('/')); }

} // namespace

// The fingerprints need every regular file's sha256: computed here, on all threads, for the contents
// the build has not hashed yet (a node's first folder: every file; later ones: their own few).
void FolderSync::hash_contents(const Tree& tree) {
    std::vector<const Entry*> files;
    tree.walk([&](const std::string& p, const Entry& e) {
        if (e.type == FileType::Regular && e.size() > 0 && !left_out(p)) files.push_back(&e);
    });
    std::vector<std::pair<size_t, size_t>> batches;
    for (size_t i = 0; i < files.size(); i += 16) batches.emplace_back(i, std::min(i + 16, files.size()));
    parallel_batches(
        batches, m_options.threads, [](size_t) { return 0; },
        [&](int, size_t i) {
            check_interrupted();
            m_sums.of(*files[i]);
        });
}

void FolderSync::write(const Tree& tree) {
    if (!m_fresh) {
        struct stat st {};
        if (::lstat(m_dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw Error("'" + m_dest + "' is not a folder (a symlink is not followed)");
        m_real_dirs.insert("/");
    }
    hash_contents(tree);
    HardlinkLeaders leaders(tree);
    std::unordered_map<std::string, std::string> leader_fp;   // first path of a hardlink group -> its fingerprint
    std::unordered_map<std::string, std::string> leader_host; // -> where its object is on the host now
    // A folder the host lacks is written whole under one temporary name, everything below it included.
    std::string fresh_under = m_fresh ? "/" : "", fresh_host = m_fresh ? m_dest : "";
    std::vector<Op> ops;

    tree.walk([&](const std::string& p, const Entry& stored) {
        check_interrupted();
        if (left_out(p)) return;
        const std::string* leader = leaders.link_to(p, stored);
        const Entry& e = leaders.object(p, stored);
        bool group = stored.type == FileType::Hardlink || stored.hardlinked;
        bool shared = e.type == FileType::Regular && m_options.store && m_options.shared && m_options.shared(p);
        ManifestItem item;
        if (leader) {
            item.type = 'h';
            item.fingerprint = sha256_hex("h:" + *leader + '\0' + leader_fp[*leader]).substr(0, 32);
        } else {
            item.type = type_char(e.type);
            item.fingerprint = fingerprint(e, shared, m_sums);
            if (group) leader_fp[p] = item.fingerprint;
        }
        m_new.emplace_back(p, item);

        auto make = [&](const std::string& host, bool mine) {
            Op op;
            op.mine = mine;
            op.host = host;
            op.stored = p;
            op.entry = &e;
            if (leader) {
                op.kind = Op::Kind::Link;
                auto it = leader_host.find(*leader);
                op.from = it != leader_host.end() ? it->second : host_of(*leader);
            } else {
                if (group) leader_host[p] = host;
                op.kind = e.type == FileType::Directory ? Op::Kind::Folder : Op::Kind::Object;
            }
            ops.push_back(std::move(op));
        };

        if (!fresh_under.empty() && path::is_within(p, fresh_under)) {
            bool top = p == fresh_under;
            std::string host = fresh_under == "/" ? fresh_host + (p == "/" ? "" : p) : fresh_host + p.substr(fresh_under.size());
            make(host, !top);
            ++m_counts.written;
            return;
        }
        fresh_under.clear();
        auto old = m_old.find(p);
        if (old != m_old.end() && old->second == item) {
            ++m_counts.unchanged;
            return;
        }
        ++m_counts.written;
        verify_folders_above(p);
        std::string target = host_of(p);
        struct stat st {};
        bool exists = ::lstat(target.c_str(), &st) == 0;
        bool folder = !leader && e.type == FileType::Directory;
        if (folder && exists && S_ISDIR(st.st_mode)) {
            // Its contents stay; they are compared one by one.
            m_real_dirs.insert(p);
            m_dir_meta.emplace_back(target, e);
            return;
        }
        Rename r{temp_beside(target), target};
        if (exists && S_ISDIR(st.st_mode)) {
            check_owned_below(p, target);
            r.clear_dir = true;
        } else if (exists && folder) {
            r.unlink_first = true;
        }
        if (folder) {
            fresh_under = p;
            fresh_host = r.temp;
        }
        make(r.temp, false);
        m_touched[path::parent(p)] = tree.get(path::parent(p))->mtime;
        m_renames.push_back(std::move(r));
    });

    for (const auto& op : ops)
        if (op.kind == Op::Kind::Folder) create_entry(op.host, op.stored, *op.entry, m_options, op.mine);
    // A batch is a folder's names: a name goes in with the folder locked, so two threads in one
    // folder would only wait for each other. The largest folders first, so that no thread is left
    // with a big one at the end.
    std::vector<const Op*> objects;
    std::vector<std::pair<size_t, size_t>> batches;
    for (const auto& op : ops) {
        if (op.kind != Op::Kind::Object) continue;
        if (objects.empty() || folder_of(objects.back()->host) != folder_of(op.host)) {
            if (!batches.empty()) batches.back().second = objects.size();
            batches.emplace_back(objects.size(), 0);
        }
        objects.push_back(&op);
    }
    if (!batches.empty()) batches.back().second = objects.size();
    std::stable_sort(batches.begin(), batches.end(), [](const auto& a, const auto& b) { return a.second - a.first > b.second - b.first; });
    parallel_batches(
        batches, m_options.threads,
        [&](size_t b) { return std::make_unique<FolderFd>(folder_of(objects[batches[b].first]->host)); },
        [&](const std::unique_ptr<FolderFd>& dir, size_t i) {
            check_interrupted();
            const Op& op = *objects[i];
            const Entry& e = *op.entry;
            // Most names are links to the store: made relative to the open folder, the store's too.
            if (e.type == FileType::Regular && m_options.store && m_options.shared && m_options.shared(op.stored))
                m_options.store->link_at(e, dir->get(), op.host.c_str() + op.host.rfind('/') + 1, op.host);
            else
                create_entry(op.host, op.stored, e, m_options, op.mine);
        });
    for (const auto& op : ops) {
        if (op.kind != Op::Kind::Link) continue;
        if (::link(op.from.c_str(), op.host.c_str()) == 0) continue;
        if (errno != ENOENT) throw Error(errno_message("link '" + op.host + "'", errno));
        // The first of the group was removed on the host meanwhile: this one gets its own object.
        create_entry(op.host, op.stored, *op.entry, m_options, op.mine);
    }
    // Folder metadata last, deepest first: what was made inside moved their mtimes.
    for (auto it = ops.rbegin(); it != ops.rend(); ++it)
        if (it->kind == Op::Kind::Folder) set_metadata(it->host, *it->entry, it->mine);

    std::unordered_set<std::string_view> now;
    now.reserve(m_new.size());
    for (const auto& [p, item] : m_new) now.insert(p);
    for (auto it = m_old_order.rbegin(); it != m_old_order.rend(); ++it) {
        if (now.count(it->first)) continue;
        m_removals.emplace_back(it->first, it->second.type);
        std::string parent = path::parent(it->first);
        if (const Entry* d = now.count(parent) ? tree.get(parent) : nullptr; d && d->is_dir()) m_touched[parent] = d->mtime;
    }
}

void FolderSync::remove_all() {
    struct stat st {};
    if (::lstat(m_dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    m_real_dirs.insert("/");
    for (auto it = m_old_order.rbegin(); it != m_old_order.rend(); ++it) m_removals.emplace_back(it->first, it->second.type);
}

void FolderSync::remove_one(const std::string& stored, char type) {
    if (stored != "/" && !folders_above_are_real(stored)) return; // no longer where imgbuild put it
    std::string host = host_of(stored);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return; // gone already
    char is = host_type_char(st.st_mode);
    if (type == 'd') {
        if (is != 'd') return;
        if (::rmdir(host.c_str()) == 0) ++m_counts.removed;
        else if (errno == ENOTEMPTY || errno == EEXIST) ++m_counts.kept; // holds someone else's files
        else throw Error(errno_message("remove '" + host + "'", errno));
        return;
    }
    if (is == 'd' || (type != 'h' && is != type)) return; // replaced by something imgbuild did not write
    if (::unlink(host.c_str()) != 0 && errno != ENOENT) throw Error(errno_message("remove '" + host + "'", errno));
    ++m_counts.removed;
}

void FolderSync::apply() {
    if (m_fresh) return;
    // Removals first: what replaces a folder then never has the old contents below it.
    for (const auto& [p, type] : m_removals) remove_one(p, type);
    for (const auto& r : m_renames) {
        if (r.clear_dir && ::rmdir(r.target.c_str()) != 0)
            throw Error(errno_message("replace the folder '" + r.target + "' (something was added to it meanwhile?)", errno));
        if (r.unlink_first && ::unlink(r.target.c_str()) != 0 && errno != ENOENT)
            throw Error(errno_message("replace '" + r.target + "'", errno));
        check_call(::rename(r.temp.c_str(), r.target.c_str()), "move '" + r.temp + "' to '" + r.target + "'");
    }
    m_temps.clear();
    for (auto it = m_dir_meta.rbegin(); it != m_dir_meta.rend(); ++it) set_metadata(it->first, it->second);
    for (const auto& [p, mtime] : m_touched) {
        if (p != "/" && !folders_above_are_real(p)) continue;
        std::string host = host_of(p);
        struct stat st {};
        if (::lstat(host.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = mtime.sec;
        ts[0].tv_nsec = ts[1].tv_nsec = mtime.nsec;
        check_call(::utimensat(AT_FDCWD, host.c_str(), ts, AT_SYMLINK_NOFOLLOW), "set mtime of '" + host + "'");
    }
}

void FolderSync::discard() noexcept {
    if (m_temps.empty()) return;
    for (const auto& t : m_temps) remove_tree(t);
    m_temps.clear();
    for (const auto& [dir, mtime] : m_folder_mtimes) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, mtime};
        ::utimensat(AT_FDCWD, dir.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }
}

ManifestEntries FolderSync::pending_manifest() const {
    ManifestEntries out;
    out.reserve(m_new.size() + m_removals.size());
    for (const auto& [p, item] : m_new) {
        auto old = m_old.find(p);
        out.emplace_back(p, old != m_old.end() && old->second == item ? item : ManifestItem{item.type, "-"});
    }
    // In walk order, as every manifest is: the next build removes deepest first by reading it backwards.
    for (auto it = m_removals.rbegin(); it != m_removals.rend(); ++it) out.emplace_back(it->first, ManifestItem{it->second, "-"});
    return out;
}

} // namespace ib
