// Output `netboot`: diskless nodes. Per node a TFTP folder the bootloader reads and an NFS root the
// kernel mounts, and once for all nodes the server's configuration (ARCHITECTURE.md).
//
//   - netboot:
//       server: 10.0.0.1            # TFTP and NFS server (IPv4); required
//       subnet: 10.0.0.0/24         # where dnsmasq answers proxy DHCP; default: server's /24
//       prefix: mac                 # mac | serial | none: how each node's TFTP folder is named
//       tftp_root: tftp             # under --out: tftp/b8-27-eb-12-34-56/..., tftp/.store/
//       nfs_root: nfs               # under --out: nfs/NODE/..., nfs/.store/, nfs/.manifests/NODE
//       server_config: netboot      # under --out: dnsmasq.conf, exports, nodes.txt
//       export_base: /srv/nfs       # where the server exports nfs_root: nfsroot=SERVER:/srv/nfs/NODE
//       tftp_server_path: /srv/tftp # where the server serves tftp_root from (dnsmasq tftp-root)
//       nfs_version: 3              # 3 | 4
//       share: auto                 # auto: /usr, /bin, /sbin, /lib, /lib64, /opt and apt's lists and
//                                   #   downloaded .debs hardlinked from one store | none: all copied |
//                                   #   export: /usr served once, read-only (below), the rest as auto
//
// One instance per node (always_per_node). TFTP: the boot folder's files, each stored once in
// tftp_root/.store (named by sha256) and hardlinked into every node's folder, plus the node's own
// cmdline.txt booting from NFS. NFS: the node's tree without the boot folder's files (the mount point
// stays), fstab without the SD partitions, swap and resize services masked, its own machine-id and
// no shared random-seed. With share: auto the regular files of the system folders are hardlinked
// from nfs_root/.store (package managers replace those by rename, so a node's upgrade never writes
// through to the others), and so are apt's package lists (/var/lib/apt/lists/*, but its lock file)
// and downloaded packages (/var/cache/apt/archives/*.deb), which apt also only ever replaces by
// rename from partial/; everything else is a copy of the node's own, reflinked where the filesystem
// can. With share: export a merged /usr is written once, as nfs_root/.usr, exported read-only, and
// mounted by every node from its fstab (which Debian's initramfs does before it starts init); the
// node roots hold /usr only as the mount point. Each node then costs a few thousand names instead of
// tens of thousands, but no node can install packages, and every node must have the same /usr (a
// node step that writes there is an error). Real owners need root: without it the output stops
// before writing anything. A node without the mac (or serial) its folder is named by is a recipe
// error, reported when the recipe is checked.
//
// Updates in place (outputs/folder_sync.hpp). The folders live on between builds, and the nodes write
// into their roots (logs, home folders, packages). So a node's folders that do not exist yet are
// written whole and renamed into place with the build's other outputs; existing ones are updated:
// nfs_root/.manifests/NODE lists what imgbuild wrote for the node (each path with a fingerprint of its
// content and metadata), and a build writes only the paths whose fingerprint changed (under a
// temporary name beside each, renamed over it once every node and output was written), removes the
// paths the recipe no longer has, and never touches anything else: files a node made stay, whatever
// imgbuild wrote and the recipe did not change is not even looked at (same inode, same mtime). The
// stores are updated the same way (a stored file is reused while it matches its name; files nothing
// links any more are removed). A failed or interrupted build removes its temporaries and changes
// nothing. A node that left the recipe keeps its folders (a warning names them) unless --prune.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/path.hpp"
#include "core/staging.hpp"
#include "core/text_file.hpp"
#include "core/units.hpp"
#include "core/validate.hpp"
#include "ext/sha256.hpp"
#include "outputs/dir_writer.hpp"
#include "outputs/file_store.hpp"
#include "outputs/folder_sync.hpp"
#include "outputs/netboot.hpp"
#include "outputs/output.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace {

using netboot::Options;
using netboot::Prefix;

// Services that only make sense with a root on the SD card: growing its partition, a swap file on it.
constexpr std::array<const char*, 4> k_sd_only_units = {"dphys-swapfile.service", "resize2fs_once.service",
                                                        "rpi-resizerootfs.service", "rpi-resizeswapfile.service"};
// Folders whose files package managers replace by rename rather than edit in place.
constexpr std::array<const char*, 6> k_shared_dirs = {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt"};
// Folders under /var whose files apt writes in partial/ and renames into place (acquire-item.cc's
// transaction commit), with the names it opens in place excluded: its lock, locked with fcntl, which
// on one shared inode would lock every node's apt at once. By suffix: "" for every other name.
constexpr std::array<std::pair<const char*, const char*>, 2> k_renamed_var = {
    std::pair{"/var/lib/apt/lists", ""}, std::pair{"/var/cache/apt/archives", ".deb"}};

// One node's folders, written (new ones whole, in Staging temporaries; existing ones as temporaries
// inside them) but not in place yet.
struct NodeWrite {
    std::string name;
    std::unique_ptr<Tree> nfs_tree; // the NFS root's tree, kept for the write that runs in the background
    std::vector<std::pair<std::string, std::unique_ptr<FolderSync>>> folders; // relative to --out
    Manifest old;
    std::string old_text; // the manifest file as it was ("" when there was none)
};

// What the per-node instances of one netboot output share during a build (Staging::shared).
struct BuildState {
    ContentSums sums;
    std::optional<FileStore> tftp_store, nfs_store;
    bool tftp_store_in_place = false, nfs_store_in_place = false;
    CopySources copies;
    std::deque<NodeWrite> written; // a deque: background writes hold references to their node's
    // A node's NFS root is written in the background while the build goes on to the next node (its
    // steps, its TFTP folder) and the one after: writing a root that links its files from the store
    // is mostly waiting for the filesystem to add names, which two nodes' folders do side by side.
    std::deque<std::future<void>> jobs;
    // Runs `job` in the background, first waiting until fewer than `limit` are running (and taking the
    // first error of those waited for).
    void run(std::function<void()> job, size_t limit) {
        while (jobs.size() >= limit) {
            auto oldest = std::move(jobs.front());
            jobs.pop_front();
            oldest.get();
        }
        jobs.push_back(std::async(std::launch::async, std::move(job)));
    }
    // Waits for every background write; rethrows the first error.
    void wait_all() {
        std::exception_ptr error;
        for (auto& j : jobs) {
            try {
                j.get();
            } catch (...) {
                if (!error) error = std::current_exception();
            }
        }
        jobs.clear();
        if (error) std::rethrow_exception(error);
    }
    std::optional<Entry> root_bootcode; // the bootcode.bin the TFTP root gets
    bool applying = false; // from here on, what the stores gained is linked from the nodes' folders
    bool roots_started = false; // the first node's NFS root is written (in the foreground)
    // share: export: what the first node has below /usr (path, fingerprint), and its name.
    std::vector<std::pair<std::string, std::string>> usr_listing;
    std::string usr_from;
    // A build that did not get to finish(): every temporary goes, the folders stay as they were.
    ~BuildState() {
        for (auto& j : jobs) j.wait(); // they write into what goes next
        for (auto& n : written)
            for (auto& f : n.folders) f.second->discard();
        if (applying) return;
        if (tftp_store) tftp_store->discard_added();
        if (nfs_store) nfs_store->discard_added();
    }
};

void check_call(int r, const std::string& what) {
    if (r != 0) throw Error(errno_message(what, errno));
}

void write_text(const std::string& host, const std::string& text, Timestamp mtime) {
    Entry e = Entry::file(make_blob(text), 0644, mtime);
    write_file(host, e);
}

bool is_real_dir(const std::string& host) {
    struct stat st {};
    return ::lstat(host.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::string> read_text(const std::string& host) {
    std::ifstream in(host, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Replaces `host` by `text` by rename, so that it is always one whole version or the other.
void replace_file(const std::string& host, const std::string& text) {
    std::string temp = host.substr(0, host.rfind('/') + 1) + "." + host.substr(host.rfind('/') + 1) + ".imgbuild-tmp";
    ::unlink(temp.c_str());
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(errno_message("create '" + temp + "'", errno));
    bool ok = true;
    int err = 0;
    for (size_t done = 0; ok && done < text.size();) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = false;
            err = n < 0 ? errno : EIO;
        } else {
            done += static_cast<size_t>(n);
        }
    }
    if (::close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok || ::rename(temp.c_str(), host.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(temp.c_str());
        throw Error(errno_message("write '" + host + "'", err));
    }
}

std::string counts_text(const FolderSync::Counts& c) {
    std::string s = std::to_string(c.written) + " written, " + std::to_string(c.removed) + " removed, " +
                    std::to_string(c.unchanged) + " unchanged";
    if (c.kept) s += ", " + std::to_string(c.kept) + " old folders kept (they hold files imgbuild did not write)";
    return s;
}

class Netboot final : public Output {
public:
    explicit Netboot(Options o) : m_o(std::move(o)) { m_path = m_o.tftp_root; }
    std::string describe() const override {
        static const char* prefixes[] = {"mac", "serial", "none"};
        return "netboot " + m_o.tftp_root + "/ " + m_o.nfs_root + "/ " + m_o.config_dir + "/ (server " + m_o.server +
               ", prefix " + prefixes[static_cast<int>(m_o.prefix)] +
               (m_o.share == netboot::Share::Auto     ? ", /usr shared"
                : m_o.share == netboot::Share::Export ? ", /usr exported once"
                                                      : "") +
               ")";
    }
    bool is_dir() const override { return true; }
    std::vector<std::string> areas() const override { return {m_o.tftp_root, m_o.nfs_root, m_o.config_dir}; }
    // The node's folders and what every node shares: all of them updated in place when they exist.
    std::vector<OutputTarget> targets(const NodeSpec* node) const override {
        std::vector<OutputTarget> out;
        std::string folder = node ? netboot::folder_for(m_o, *node) : std::string();
        if (node) {
            out.push_back({folder.empty() ? m_o.tftp_root : m_o.tftp_root + "/" + folder, true});
            out.push_back({m_o.nfs_root + "/" + node->name, true});
        }
        if (!folder.empty()) out.push_back({m_o.tftp_root + "/bootcode.bin", false});
        out.push_back({m_o.tftp_root + "/.store", true});
        if (m_o.share != netboot::Share::None) out.push_back({m_o.nfs_root + "/.store", true});
        if (m_o.share == netboot::Share::Export) out.push_back({m_o.nfs_root + "/" + netboot::k_usr_folder, true});
        out.push_back({m_o.nfs_root + "/.manifests", true});
        for (const char* f : {"dnsmasq.conf", "exports", "nodes.txt"}) out.push_back({m_o.config_dir + "/" + f, false});
        return out;
    }
    std::string written(const OutputWriteEnv& env) const override {
        if (!env.node) return m_o.tftp_root + "/";
        std::string folder = node_folder(*env.node);
        return m_o.tftp_root + "/" + (folder.empty() ? "" : folder + "/") + " and " + m_o.nfs_root + "/" + env.node->name + "/";
    }
    void check(const Tree& tree) const override { check_root_needed(tree, what()); }

    void write(const Tree& tree, Staging& staging, const OutputWriteEnv& env) const override {
        if (!env.node) throw Error(what() + ": is written once per node, but was given no node");
        const NodeSpec& node = *env.node;
        BuildState& st = staging.shared<BuildState>("netboot " + m_o.tftp_root);
        std::string folder = node_folder(node);
        if (m_o.prefix == Prefix::None && !st.written.empty())
            throw Error(what() + ": prefix: none serves one node from the TFTP root itself, but nodes '" + st.written.front().name +
                        "' and '" + node.name + "' both boot from it; use prefix: mac or serial");
        std::string boot = require_boot_dir(tree, what());
        NodeWrite& nw = st.written.emplace_back();
        nw.name = node.name;
        read_manifest(staging.out_dir(), nw);
        write_tftp(tree, boot, folder, node, staging, st, nw, env);
        write_nfs(tree, boot, node, staging, st, nw, env);
    }

    void finish(Staging& staging, const NodeOutputs& all, const OutputWriteEnv& env) const override {
        BuildState& st = staging.shared<BuildState>("netboot " + m_o.tftp_root);
        st.wait_all();
        const std::string& out = staging.out_dir();
        std::set<std::string> claimed; // folders this build writes: nothing else may remove them
        for (const auto& n : st.written)
            for (const auto& f : n.folders) claimed.insert(f.first);
        std::set<std::string> names;
        for (const auto& [o, node] : all) names.insert(node->name);
        // The shared /usr of share: export is one more owner of folders: kept while exported, and
        // like a node that left the recipe (warned about, removed with --prune) once it is not.
        if (m_o.share == netboot::Share::Export) names.insert(netboot::k_usr_folder);

        // Every node and output is written: from here on the folders change. First the nodes that
        // left the recipe, then every node's folders and manifest, the TFTP root's bootcode.bin, and
        // last the stored files nothing links to any more.
        st.applying = true;
        bool in_place = st.tftp_store_in_place || st.nfs_store_in_place;
        for (const auto& n : st.written)
            for (const auto& f : n.folders) in_place = in_place || is_real_dir(out + "/" + f.first);
        if (in_place) staging.changed_in_place("the netboot folders in " + out + "/" + m_o.tftp_root + "/ and " + out + "/" + m_o.nfs_root + "/");
        leftover_nodes(out, names, claimed, env.prune, st);
        std::string summary = apply_nodes(out, claimed, st);
        place_root_bootcode(out, st);
        size_t unused = 0;
        if (st.tftp_store && st.tftp_store_in_place) unused += st.tftp_store->collect_garbage();
        if (st.nfs_store && st.nfs_store_in_place) unused += st.nfs_store->collect_garbage();
        if (!summary.empty())
            log::info("netboot: " + summary + (unused ? "; " + std::to_string(unused) + " stored files nothing uses any more removed" : ""));

        // The server's files, renamed into place with the build's other outputs.
        std::vector<netboot::NodeRow> rows;
        for (const auto& entry : all) {
            const auto& node = entry.second; // not a structured binding: clang 14 cannot capture one
            auto field = [&](const char* k) {
                auto it = node->fields.find(k);
                return it == node->fields.end() ? std::string() : it->second;
            };
            rows.push_back({node->name, field("mac"), field("serial"), field("ip"), node_folder(*node)});
        }
        std::string recipe = env.identity.substr(0, env.identity.find('/'));
        write_text(staging.temp_for(m_o.config_dir + "/dnsmasq.conf"), netboot::dnsmasq_conf(m_o, recipe), env.now);
        write_text(staging.temp_for(m_o.config_dir + "/exports"), netboot::exports(m_o, rows), env.now);
        write_text(staging.temp_for(m_o.config_dir + "/nodes.txt"), netboot::nodes_table(m_o, rows), env.now);
    }

private:
    std::string what() const { return "output 'netboot'"; }

    std::string node_folder(const NodeSpec& node) const {
        try {
            return netboot::folder_for(m_o, node);
        } catch (const Error& e) {
            throw Error(what() + ": " + e.what());
        }
    }

    // Whether a manifest's folder is one a node can have: the TFTP root (prefix: none), or a folder of
    // the TFTP or NFS root other than the stores and manifests. Nothing else is removed for a node.
    bool node_folder_shape(const std::string& rel) const {
        std::string abs = "/" + rel, parent = path::parent(abs).substr(1);
        std::string_view name = path::name(abs);
        return rel == m_o.tftp_root || rel == m_o.nfs_root + "/" + netboot::k_usr_folder ||
               ((parent == m_o.tftp_root || parent == m_o.nfs_root) && !name.empty() && name[0] != '.');
    }

    std::string manifest_dir(const std::string& out) const { return out + "/" + m_o.nfs_root + "/.manifests"; }

    void read_manifest(const std::string& out, NodeWrite& nw) const {
        std::string file = manifest_dir(out) + "/" + nw.name;
        auto text = read_text(file);
        if (!text) return;
        try {
            nw.old = parse_manifest(*text, file);
            nw.old_text = *text;
        } catch (const Error& e) {
            log::warn(what() + ": " + e.what() + "; nothing in the folders of node '" + nw.name +
                      "' is taken for imgbuild's: what the recipe has is written over them, nothing is removed");
        }
    }

    // Where the folder `rel` is written: the existing folder itself, or a new Staging temporary.
    std::pair<std::string, bool> target_for(const std::string& rel, Staging& staging) const {
        std::string host = staging.out_dir() + "/" + rel;
        struct stat st {};
        if (::lstat(host.c_str(), &st) != 0) {
            if (errno != ENOENT) throw Error(errno_message(what() + ": '" + host + "'", errno));
            return {staging.temp_for(rel), true};
        }
        if (!S_ISDIR(st.st_mode))
            throw Error(what() + ": '" + host + "' exists and is not a folder" + (S_ISLNK(st.st_mode) ? " (imgbuild does not write through a symlink)" : ""));
        return {host, false};
    }

    // A store: the one an earlier build left, used in place, or a new one renamed into place at the end.
    void open_store(std::optional<FileStore>& store, bool& in_place, const std::string& rel, Staging& staging, BuildState& st) const {
        if (store) return;
        std::string host = staging.out_dir() + "/" + rel;
        in_place = is_real_dir(host);
        store.emplace(in_place ? host : staging.shared_temp_for(rel), &st.sums);
    }

    void sync_folder(const std::string& rel, const Tree& t, const FolderOptions& fo, const std::string& dest, bool fresh,
                     BuildState& st, NodeWrite& nw) const {
        static const ManifestEntries k_none;
        const ManifestEntries* old = fresh ? nullptr : nw.old.find(rel);
        auto sync = std::make_unique<FolderSync>(dest, old ? *old : k_none, fo, st.sums, fresh);
        FolderSync& s = *sync;
        nw.folders.emplace_back(rel, std::move(sync));
        s.write(t);
        log::detail("  netboot [" + nw.name + "]: " + rel + "/" + (fresh ? " (new): " : ": ") + counts_text(s.counts()));
    }

    void write_tftp(const Tree& tree, const std::string& boot, const std::string& folder, const NodeSpec& node,
                    Staging& staging, BuildState& st, NodeWrite& nw, const OutputWriteEnv& env) const {
        // The TFTP folder as a tree of its own: a TFTP client sees bytes only, so every boot file is
        // root's and world-readable (the TFTP server runs unprivileged), whatever the FAT reader made
        // of its mode.
        Tree t("tftp", env.now);
        std::optional<Entry> bootcode;
        tree.walk_under(boot, [&](const std::string& p, const Entry& stored) {
            if (p == boot) return;
            std::string rel = p.substr(boot.size());
            if (stored.type == FileType::Directory) {
                t.put(rel, Entry::directory(0755, stored.mtime), false);
                return;
            }
            if (rel == "/cmdline.txt") return; // the node's own, below
            const Entry* e = stored.type == FileType::Regular ? &stored : tree.find(p);
            if (!e || e->type != FileType::Regular) {
                log::warn(what() + ": '" + p + "' is not a regular file; the TFTP folder leaves it out");
                return;
            }
            t.put(rel, Entry::file(e->content, 0644, e->mtime), false);
            if (rel == "/bootcode.bin") bootcode = *t.get(rel);
        });
        std::string base = text::read_or_empty(tree, boot + "/cmdline.txt");
        t.put("/cmdline.txt", Entry::file(make_blob(netboot::cmdline(base, m_o, node.name)), 0644, env.now), false);

        std::string rel = folder.empty() ? m_o.tftp_root : m_o.tftp_root + "/" + folder;
        auto [dest, fresh] = target_for(rel, staging);
        // prefix: none: the node's folder is the TFTP root, and the store is in it.
        if (folder.empty() && fresh) st.tftp_store.emplace(dest + "/.store", &st.sums);
        else open_store(st.tftp_store, st.tftp_store_in_place, m_o.tftp_root + "/.store", staging, st);
        FolderOptions fo;
        fo.threads = env.threads;
        fo.store = &*st.tftp_store;
        fo.shared = [](std::string_view p) { return p != "/cmdline.txt"; };
        sync_folder(rel, t, fo, dest, fresh, st, nw);
        // A Pi 3B/3B+ (and 2B v1.2) boot ROM asks the TFTP server for "bootcode.bin" without any
        // folder; only bootcode.bin then looks for SERIAL/start.elf (Raspberry Pi documentation,
        // "Network booting"). So one bootcode.bin sits in the TFTP root too. With
        // tftp-unique-root=mac dnsmasq serves it from the node's MAC folder instead when one exists.
        if (bootcode && !folder.empty() && !st.root_bootcode) {
            st.tftp_store->put(*bootcode);
            st.root_bootcode = bootcode;
        }
    }

    // What systemd and D-Bus take as the machine's identity must not be the base's on every node: a
    // copied machine-id (journal, DHCP client id, D-Bus) becomes one per node, derived from the
    // build identity "recipe/node" so two builds agree; an empty or "uninitialized" one is left for
    // systemd to make at first boot. The base's random-seed would give every node the same seed
    // at its first boot: it is dropped, and each node saves its own.
    static void give_own_identity(Tree& root, const OutputWriteEnv& env) {
        std::string id = sha256_hex("imgbuild machine-id\n" + env.identity).substr(0, 32) + "\n";
        for (const char* path : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
            const Entry* f = root.find(path, false);
            if (!f || f->type != FileType::Regular) continue; // absent, or the usual link to /etc's
            std::string old = root.read_file(path);
            if (old.empty() || old == "uninitialized\n") continue;
            text::write_if_changed(root, path, id, 0444, env.now);
        }
        if (const Entry* f = root.find("/var/lib/systemd/random-seed", false); f && f->type == FileType::Regular)
            root.remove("/var/lib/systemd/random-seed");
    }

    // share: export. The node's /usr must be the first node's: that one is written (as the folder
    // nfs_root/.usr, updated in place like a node's, with its manifest .manifests/.usr) and exported
    // to all. The node's root keeps /usr empty (its writer leaves /usr's contents out), as the mount
    // point of the fstab line added here.
    void serve_usr(Tree& root, const std::string& node, Staging& staging, BuildState& st, const OutputWriteEnv& env) const {
        for (const char* d : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"})
            if (const Entry* e = root.get(d); e && e->is_dir())
                throw Error(what() + ": share: export mounts /usr alone, from the initramfs, which needs a merged /usr, but '" +
                            d + "' is a folder here, not a link into /usr (usrmerge); use share: auto");
        root.walk([&](const std::string& p, const Entry& e) {
            if (e.type == FileType::Hardlink && path::is_within(e.link, "/usr") != path::is_within(p, "/usr"))
                throw Error(what() + ": share: export serves /usr apart from the root, but '" + p + "' is a hardlink to '" +
                            e.link + "' across it; use share: auto");
        });
        const Entry* usr = root.get("/usr");
        if (!usr || !usr->is_dir()) throw Error(what() + ": share: export serves /usr, but the tree has no /usr folder");

        std::vector<std::pair<std::string, std::string>> listing;
        root.walk_under("/usr", [&](const std::string& p, const Entry& e) {
            check_interrupted();
            listing.emplace_back(p, entry_fingerprint(e, st.sums));
        });
        if (!st.usr_from.empty()) {
            auto [mine, first] = std::mismatch(listing.begin(), listing.end(), st.usr_listing.begin(), st.usr_listing.end());
            if (mine != listing.end() || first != st.usr_listing.end()) {
                std::string p = mine == listing.end() ? first->first
                                : first == st.usr_listing.end() ? mine->first
                                                                : std::min(mine->first, first->first, path::Less());
                throw Error(what() + ": share: export serves one /usr to every node, but node '" + node + "' and node '" +
                            st.usr_from + "' differ at '" + p + "'; keep what differs per node outside /usr, or use share: auto");
            }
        } else {
            st.usr_from = node;
            st.usr_listing = std::move(listing);
            // The folder's tree: /usr as its root, hardlinks within it kept (one to outside /usr becomes a copy).
            Tree t("usr", usr->mtime);
            *t.edit("/") = *usr;
            std::vector<std::pair<std::string, std::string>> links;
            root.walk_under("/usr", [&](const std::string& p, const Entry& e) {
                if (p == "/usr") return;
                std::string rel = p.substr(4);
                if (e.type == FileType::Hardlink && path::is_within(e.link, "/usr")) {
                    links.emplace_back(rel, e.link.substr(4));
                    return;
                }
                Entry copy = e.type == FileType::Hardlink ? *root.find(p, false) : e;
                copy.hardlinked = false;
                t.put(rel, std::move(copy), false);
            });
            for (const auto& [rel, target] : links) t.link(rel, target);
            NodeWrite& uw = st.written.emplace_back();
            uw.name = netboot::k_usr_folder;
            read_manifest(staging.out_dir(), uw);
            std::string rel = m_o.nfs_root + "/" + netboot::k_usr_folder;
            auto [dest, fresh] = target_for(rel, staging);
            FolderOptions fo;
            fo.threads = env.threads;
            fo.copies = &st.copies;
            sync_folder(rel, t, fo, dest, fresh, st, uw);
        }
        std::string old = text::read_or_empty(root, "/etc/fstab");
        text::write_if_changed(root, "/etc/fstab", netboot::fstab_with_usr(old, m_o), 0644, env.now);
    }

    void write_nfs(const Tree& tree, const std::string& boot, const NodeSpec& node, Staging& staging, BuildState& st,
                   NodeWrite& nw, const OutputWriteEnv& env) const {
        nw.nfs_tree = std::make_unique<Tree>(tree.fork("netboot"));
        Tree& root = *nw.nfs_tree;
        // The boot files are served by TFTP; the mount point stays, empty.
        for (const auto& child : root.children(boot)) root.remove(boot + "/" + child);
        if (const Entry* f = root.find("/etc/fstab"); f && f->type == FileType::Regular) {
            std::string old = root.read_file("/etc/fstab");
            text::write_if_changed(root, "/etc/fstab", netboot::fstab(old, boot), 0644, env.now);
        }
        for (const char* unit : k_sd_only_units)
            if (units::find(root, unit)) units::mask(root, unit);
        give_own_identity(root, env);
        if (m_o.share == netboot::Share::Export) serve_usr(root, node.name, staging, st, env);

        std::string rel = m_o.nfs_root + "/" + node.name;
        auto [dest, fresh] = target_for(rel, staging);
        FolderOptions fo;
        fo.threads = env.threads;
        fo.copies = &st.copies;
        if (m_o.share == netboot::Share::Export) fo.leave_out = "/usr";
        if (m_o.share != netboot::Share::None) {
            open_store(st.nfs_store, st.nfs_store_in_place, m_o.nfs_root + "/.store", staging, st);
            // Stored paths are resolved ones: on a usrmerge system /bin is a link and its files are
            // stored under /usr/bin.
            std::vector<std::string> shared_dirs;
            for (const char* d : k_shared_dirs) shared_dirs.push_back(root.resolve(d));
            std::vector<std::pair<std::string, std::string>> renamed;
            for (const auto& [d, suffix] : k_renamed_var) renamed.emplace_back(root.resolve(d), suffix);
            fo.store = &*st.nfs_store;
            fo.shared = [shared_dirs, renamed](std::string_view p) {
                for (const auto& d : shared_dirs)
                    if (path::is_within(p, d) && p != d) return true;
                std::string_view name = path::name(p);
                for (const auto& [d, suffix] : renamed)
                    if (path::parent(p) == d && name != "lock" && name.ends_with(suffix)) return true;
                return false;
            };
        }
        // The first node in the foreground, with every thread: it hashes the files and fills the store
        // that the later nodes only link from. Those then in the background, a thread each.
        bool first = !st.roots_started;
        st.roots_started = true;
        if (first || env.threads <= 1) {
            sync_folder(rel, root, fo, dest, fresh, st, nw);
            nw.nfs_tree.reset();
            return;
        }
        fo.threads = 1;
        st.run(
            [this, rel, fo, dest = dest, fresh = fresh, &st, &nw] { // copies: clang 14 cannot capture bindings
                sync_folder(rel, *nw.nfs_tree, fo, dest, fresh, st, nw);
                nw.nfs_tree.reset();
            },
            static_cast<size_t>(env.threads));
    }

    // The TFTP root's bootcode.bin, a link to the stored one: replaced (by rename) only when it is not
    // that file already.
    void place_root_bootcode(const std::string& out, BuildState& st) const {
        if (!st.root_bootcode) return;
        std::string stored = st.tftp_store->put(*st.root_bootcode);
        std::string target = out + "/" + m_o.tftp_root + "/bootcode.bin";
        struct stat now {}, want {};
        if (::lstat(target.c_str(), &now) == 0 && ::lstat(stored.c_str(), &want) == 0 && now.st_ino == want.st_ino &&
            now.st_dev == want.st_dev)
            return;
        std::string temp = out + "/" + m_o.tftp_root + "/.bootcode.bin.imgbuild-tmp";
        ::unlink(temp.c_str());
        check_call(::link(stored.c_str(), temp.c_str()), "link '" + temp + "'");
        if (::rename(temp.c_str(), target.c_str()) != 0) {
            int err = errno;
            ::unlink(temp.c_str());
            throw Error(errno_message("replace '" + target + "'", err));
        }
    }

    // Puts every node's folders in place. Returns what happened to the existing ones, for the log
    // ("" when every node was new).
    std::string apply_nodes(const std::string& out, const std::set<std::string>& claimed, BuildState& st) const {
        FolderSync::Counts total;
        size_t updated = 0, fresh = 0;
        for (auto& n : st.written) {
            auto [c, in_place] = apply_node(out, n, claimed, st);
            if (n.name != netboot::k_usr_folder) (in_place ? updated : fresh) += 1; // counted as its entries only
            if (!in_place) continue;
            total.written += c.written;
            total.removed += c.removed;
            total.unchanged += c.unchanged;
            total.kept += c.kept;
        }
        if (!updated) return "";
        std::string what = total.written || total.removed
                               ? "updated in place (" + counts_text(total) + ")"
                               : "already up to date (" + std::to_string(total.unchanged) + " entries unchanged)";
        return std::to_string(updated) + (updated == 1 ? " node's folders " : " nodes' folders ") + what +
               (fresh ? ", " + std::to_string(fresh) + " new" : "");
    }

    // Puts node `n`'s folders in place, removes those it no longer has (unless another node now
    // writes them) and keeps its manifest. Returns the counts and whether anything was there before.
    std::pair<FolderSync::Counts, bool> apply_node(const std::string& out, NodeWrite& n, const std::set<std::string>& claimed,
                                                   BuildState& st) const {
        FolderSync::Counts c;
        bool in_place = false;
        Manifest pending, final;
        bool changes = false;
        for (auto& [rel, sync] : n.folders) {
            in_place = in_place || is_real_dir(out + "/" + rel);
            changes = changes || sync->changes();
            pending.folders.emplace_back(rel, sync->changes() ? sync->pending_manifest() : sync->manifest());
            final.folders.emplace_back(rel, sync->manifest());
        }
        // A folder the node had and no longer has (its MAC changed): what imgbuild wrote there goes.
        std::vector<std::pair<std::string, std::unique_ptr<FolderSync>>> gone;
        for (const auto& [rel, entries] : n.old.folders) {
            if (claimed.count(rel) || !node_folder_shape(rel) || !is_real_dir(out + "/" + rel)) continue;
            static const FolderOptions k_no_options;
            gone.emplace_back(rel, std::make_unique<FolderSync>(out + "/" + rel, entries, k_no_options, st.sums, false));
            gone.back().second->remove_all();
            pending.folders.emplace_back(rel, entries);
            changes = true;
        }
        std::string dir = manifest_dir(out);
        std::string file = dir + "/" + n.name;
        std::string comment = "What imgbuild wrote for node '" + n.name + "' (output netboot). The next build reads it to "
                              "update these folders in place; edit nothing here.";
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw Error(errno_message("create '" + dir + "'", errno));
        if (changes && !n.old_text.empty()) replace_file(file, manifest_text(pending, comment));
        for (auto& [rel, sync] : n.folders) {
            sync->apply();
            const auto& k = sync->counts();
            c.written += k.written;
            c.removed += k.removed;
            c.unchanged += k.unchanged;
            c.kept += k.kept;
        }
        for (auto& [rel, sync] : gone) {
            sync->apply();
            c.removed += sync->counts().removed;
            log::info("netboot: node '" + n.name + "' no longer uses " + out + "/" + rel + "/: " +
                      std::to_string(sync->counts().removed) + " entries imgbuild wrote there removed" +
                      (sync->counts().kept ? ", the folders holding other files kept" : ""));
        }
        std::string text = manifest_text(final, comment);
        if (text != n.old_text) replace_file(file, text);
        return {c, in_place};
    }

    // Nodes with a manifest but no longer in the recipe: their folders are kept and named in a
    // warning, or removed with --prune. A folder some node of this build writes is never touched, and
    // one that holds other folders (the TFTP root itself, with prefix: none) loses only what was the
    // node's.
    void leftover_nodes(const std::string& out, const std::set<std::string>& names, const std::set<std::string>& claimed,
                        bool prune, BuildState& st) const {
        std::string dir = manifest_dir(out);
        DIR* d = ::opendir(dir.c_str());
        if (!d) return;
        std::vector<std::string> files;
        while (const dirent* de = ::readdir(d))
            if ((de->d_name[0] != '.' || de->d_name == std::string_view(netboot::k_usr_folder)) && !names.count(de->d_name))
                files.push_back(de->d_name);
        ::closedir(d);
        std::sort(files.begin(), files.end());
        for (const auto& name : files) {
            std::string file = dir + "/" + name;
            Manifest m;
            try {
                m = parse_manifest(read_text(file).value_or(""), file);
            } catch (const Error& e) {
                log::warn(what() + ": " + e.what() + "; left as it is");
                continue;
            }
            std::vector<std::pair<std::string, const ManifestEntries*>> folders;
            for (const auto& [rel, entries] : m.folders)
                if (!claimed.count(rel) && node_folder_shape(rel) && is_real_dir(out + "/" + rel)) folders.emplace_back(rel, &entries);
            std::string listed;
            for (const auto& f : folders) listed += (listed.empty() ? "" : ", ") + out + "/" + f.first + "/";
            if (folders.empty()) {
                ::unlink(file.c_str()); // nothing of it is left
                continue;
            }
            std::string who = name == netboot::k_usr_folder ? "the /usr that share: export served" : "node '" + name + "'";
            if (!prune) {
                log::warn("netboot: " + who + " is no longer in the recipe; its folders " + listed +
                          " are kept as they are (the server files no longer list it); imgbuild --prune removes them");
                continue;
            }
            for (const auto& [rel, entries] : folders) {
                bool holds_others = rel == m_o.tftp_root || rel == m_o.nfs_root;
                for (const auto& c : claimed) holds_others = holds_others || path::is_within("/" + c, "/" + rel);
                if (!holds_others) {
                    remove_tree(out + "/" + rel);
                    continue;
                }
                static const FolderOptions k_no_options;
                FolderSync s(out + "/" + rel, *entries, k_no_options, st.sums, false);
                s.remove_all();
                s.apply();
            }
            check_call(::unlink(file.c_str()), "remove '" + file + "'");
            log::info("netboot: " + who + " is no longer in the recipe: removed " + listed + " (--prune)");
        }
    }

    Options m_o;
};

// A folder under --out: relative, without "..", not the output folder itself. Normalised.
std::optional<std::string> out_folder(MapReader& m, const Doc& options, OutputParseEnv& env, const char* key,
                                      const std::string& fallback) {
    auto v = m.string(key);
    if (!v) return fallback;
    const Mark& mark = options.find(key)->mark();
    bool dotdot = false;
    for (auto part : path::split(*v)) dotdot = dotdot || part == "..";
    // Its name is written into dnsmasq.conf, exports and nodes.txt (a table split at blanks).
    if (auto why = validate::one_line_without(*v, " \t\"\\,#")) {
        env.diag.error(mark, env.what + ": " + key + " '" + validate::shown(*v) + "' " + *why +
                                 "; it is written into the server's configuration files");
        return std::nullopt;
    }
    std::string normal = v->empty() || (*v)[0] == '/' ? "" : path::normalise(*v).substr(1);
    if (v->empty() || (*v)[0] == '/' || dotdot || normal.empty()) {
        env.diag.error(mark, env.what + ": " + key + " '" + *v + "' must be a folder inside the output folder (--out), "
                                                              "relative and without '..'");
        return std::nullopt;
    }
    return normal;
}

// A path on the server: absolute, normalised, without blanks (exports and dnsmasq lines split at them).
std::optional<std::string> server_path(MapReader& m, const Doc& options, OutputParseEnv& env, const char* key,
                                       const std::string& fallback) {
    auto v = m.string(key);
    if (!v) return fallback;
    // Written into exports, dnsmasq.conf (tftp-root=PATH[,INTERFACE]), fstab and cmdline.txt
    // (nfsroot=SERVER:PATH,OPTIONS): each splits at blanks or commas, or reads '#', quotes or '\'.
    auto why = validate::one_line_without(*v, " \t\"\\,#'");
    if (v->empty() || (*v)[0] != '/' || why) {
        env.diag.error(options.find(key)->mark(),
                       env.what + ": " + key + " '" + validate::shown(*v) +
                           "' must be an absolute path on the server without blanks, "
                           "commas, quotes, '#' or '\\'" +
                           (why ? " (it " + *why + ")" : ""));
        return std::nullopt;
    }
    return path::normalise(*v);
}

uint32_t ipv4_value(const std::string& s) {
    uint32_t v = 0;
    size_t i = 0;
    for (int part = 0; part < 4; ++part) {
        size_t dot = s.find('.', i);
        v = (v << 8) | static_cast<uint32_t>(std::stoul(s.substr(i, dot - i)));
        i = dot + 1;
    }
    return v;
}

std::string ipv4_text(uint32_t v) {
    return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." + std::to_string((v >> 8) & 255) + "." +
           std::to_string(v & 255);
}

} // namespace

std::unique_ptr<Output> parse_netboot_output(const Doc& options, OutputParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    size_t errors = env.diag.error_count();
    Options o;
    if (auto s = m.string("server", true)) {
        if (auto why = validate::ipv4(*s, false))
            env.diag.error(options.find("server")->mark(),
                           env.what + ": server '" + validate::shown(*s) + "' " + *why);
        else o.server = *s;
    }
    int prefix_len = 24;
    std::optional<uint32_t> subnet;
    if (auto s = m.string("subnet")) {
        const Mark& mark = options.find("subnet")->mark();
        if (auto why = validate::ipv4(*s, true))
            env.diag.error(mark, env.what + ": subnet '" + validate::shown(*s) + "' " + *why);
        else if (s->find('/') == std::string::npos)
            env.diag.error(mark, env.what + ": subnet '" + *s + "' needs a /prefix, such as 10.0.0.0/24");
        else {
            prefix_len = std::stoi(s->substr(s->find('/') + 1));
            subnet = ipv4_value(s->substr(0, s->find('/')));
        }
    }
    if (auto p = m.string("prefix")) {
        if (*p == "mac") o.prefix = Prefix::Mac;
        else if (*p == "serial") o.prefix = Prefix::Serial;
        else if (*p == "none") o.prefix = Prefix::None;
        else env.diag.error(options.find("prefix")->mark(), env.what + ": prefix '" + *p + "' is not mac, serial or none");
    }
    auto tftp = out_folder(m, options, env, "tftp_root", o.tftp_root);
    auto nfs = out_folder(m, options, env, "nfs_root", o.nfs_root);
    auto config = out_folder(m, options, env, "server_config", o.config_dir);
    auto exp = server_path(m, options, env, "export_base", o.export_base);
    auto served = server_path(m, options, env, "tftp_server_path", o.tftp_server_path);
    if (auto v = m.uint("nfs_version")) {
        if (*v != 3 && *v != 4)
            env.diag.error(options.find("nfs_version")->mark(), env.what + ": nfs_version " + std::to_string(*v) + " is not 3 or 4");
        else o.nfs_version = static_cast<int>(*v);
    }
    if (auto s = m.string("share")) {
        if (*s == "none") o.share = netboot::Share::None;
        else if (*s == "export") o.share = netboot::Share::Export;
        else if (*s != "auto")
            env.diag.error(options.find("share")->mark(), env.what + ": share '" + *s + "' is not auto, none or export");
    }
    m.finish();
    if (tftp && nfs && config) {
        std::array<std::pair<const char*, std::string>, 3> dirs = {{{"tftp_root", *tftp}, {"nfs_root", *nfs}, {"server_config", *config}}};
        for (size_t i = 0; i < dirs.size(); ++i)
            for (size_t j = i + 1; j < dirs.size(); ++j)
                if (path::is_within("/" + dirs[i].second, "/" + dirs[j].second) ||
                    path::is_within("/" + dirs[j].second, "/" + dirs[i].second))
                    env.diag.error(options.mark(), env.what + ": " + dirs[i].first + " '" + dirs[i].second + "' and " +
                                                       dirs[j].first + " '" + dirs[j].second + "' overlap; give each its own folder");
    }
    if (!o.server.empty()) {
        uint32_t mask = prefix_len == 0 ? 0 : ~uint32_t(0) << (32 - prefix_len);
        uint32_t server = ipv4_value(o.server);
        if (subnet && (server & mask) != (*subnet & mask))
            env.diag.error(options.find("subnet")->mark(), env.what + ": server " + o.server + " is not in subnet " +
                                                               ipv4_text(*subnet) + "/" +
                                                               std::to_string(prefix_len));
        o.subnet = ipv4_text((subnet ? *subnet : server) & mask);
        o.netmask = ipv4_text(mask);
    }
    // Each node's instance: a node its TFTP folder cannot be named for is the recipe's mistake, shown
    // at the node, before anything is built.
    if (env.node) {
        try {
            netboot::folder_for(o, *env.node);
        } catch (const Error& e) {
            env.diag.error(env.node->mark, env.what + ": " + e.what());
        }
    }
    if (env.diag.error_count() != errors || !tftp || !nfs || !config || !exp || !served) return nullptr;
    o.tftp_root = *tftp;
    o.nfs_root = *nfs;
    o.config_dir = *config;
    o.export_base = *exp;
    o.tftp_server_path = *served;
    return std::make_unique<Netboot>(std::move(o));
}

} // namespace ib
