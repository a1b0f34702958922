// Output `netboot`: diskless nodes. Per node a TFTP folder the bootloader reads and an NFS root the
// kernel mounts, and once for all nodes the server's configuration (DESIGN.md, "Writers").
//
//   - netboot:
//       server: 10.0.0.1            # TFTP and NFS server (IPv4); required
//       subnet: 10.0.0.0/24         # where dnsmasq answers proxy DHCP; default: server's /24
//       prefix: mac                 # mac | serial | none: how each node's TFTP folder is named
//       tftp_root: tftp             # under --out: tftp/b8-27-eb-12-34-56/..., tftp/.store/
//       nfs_root: nfs               # under --out: nfs/NODE/..., nfs/.store/
//       server_config: netboot      # under --out: dnsmasq.conf, exports, nodes.txt
//       export_base: /srv/nfs       # where the server exports nfs_root: nfsroot=SERVER:/srv/nfs/NODE
//       tftp_server_path: /srv/tftp # where the server serves tftp_root from (dnsmasq tftp-root)
//       nfs_version: 3              # 3 | 4
//       share: auto                 # auto: /usr, /bin, /sbin, /lib, /lib64, /opt shared | none
//
// One instance per node (always_per_node). TFTP: the boot folder's files, each stored once in
// tftp_root/.store (named by sha256) and hardlinked into every node's folder, plus the node's own
// cmdline.txt booting from NFS. NFS: the node's tree without the boot folder's files (the mount point
// stays), fstab without the SD partitions, swap and resize services masked; with share: auto the
// regular files of the system folders are hardlinked from nfs_root/.store (package managers replace
// those by rename, so a node's upgrade never writes through to the others), and everything else is a
// copy of the node's own, reflinked where the filesystem can. Real owners need root: without it the
// output stops before writing anything.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/path.hpp"
#include "core/staging.hpp"
#include "core/text_file.hpp"
#include "core/units.hpp"
#include "core/validate.hpp"
#include "outputs/dir_writer.hpp"
#include "outputs/file_store.hpp"
#include "outputs/netboot.hpp"
#include "outputs/output.hpp"

#include <array>
#include <cerrno>
#include <fcntl.h>
#include <optional>
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

// What the per-node instances of one netboot output share during a build (Staging::shared).
struct BuildState {
    std::optional<FileStore> tftp_store, nfs_store;
    CopySources copies;
    std::vector<std::string> nodes; // written so far
    bool root_bootcode = false;
};

void check_call(int r, const std::string& what) {
    if (r != 0) throw Error(errno_message(what, errno));
}

void write_text(const std::string& host, const std::string& text, Timestamp mtime) {
    Entry e = Entry::file(make_blob(text), 0644, mtime);
    write_file_content(host, e);
    set_metadata(host, e);
}

class Netboot final : public Output {
public:
    explicit Netboot(Options o) : m_o(std::move(o)) { m_path = m_o.tftp_root; }
    std::string describe() const override {
        static const char* prefixes[] = {"mac", "serial", "none"};
        return "netboot " + m_o.tftp_root + "/ " + m_o.nfs_root + "/ " + m_o.config_dir + "/ (server " + m_o.server +
               ", prefix " + prefixes[static_cast<int>(m_o.prefix)] + (m_o.share ? ", /usr shared" : "") + ")";
    }
    bool is_dir() const override { return true; }
    void check(const Tree& tree) const override { check_root_needed(tree, what()); }

    void write(const Tree& tree, Staging& staging, const OutputWriteEnv& env) const override {
        if (!env.node) throw Error(what() + ": is written once per node, but was given no node");
        const NodeSpec& node = *env.node;
        BuildState& st = staging.shared<BuildState>("netboot " + m_o.tftp_root);
        std::string folder = node_folder(node);
        if (m_o.prefix == Prefix::None && !st.nodes.empty())
            throw Error(what() + ": prefix: none serves one node from the TFTP root itself, but nodes '" + st.nodes.front() +
                        "' and '" + node.name + "' both boot from it; use prefix: mac or serial");
        st.nodes.push_back(node.name);
        std::string boot = require_boot_dir(tree, what());
        write_tftp(tree, boot, folder, node, staging, st, env);
        write_nfs(tree, boot, node, staging, st, env);
    }

    void finish(Staging& staging, const NodeOutputs& all, const OutputWriteEnv& env) const override {
        std::vector<netboot::NodeRow> rows;
        for (const auto& [out, node] : all) {
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

    void write_tftp(const Tree& tree, const std::string& boot, const std::string& folder, const NodeSpec& node,
                    Staging& staging, BuildState& st, const OutputWriteEnv& env) const {
        std::string dest;
        if (folder.empty()) {
            dest = staging.temp_for(m_o.tftp_root);
            check_call(::mkdir(dest.c_str(), 0755), "mkdir '" + dest + "'");
            if (!st.tftp_store) st.tftp_store.emplace(dest + "/.store");
        } else {
            dest = staging.temp_for(m_o.tftp_root + "/" + folder);
            check_call(::mkdir(dest.c_str(), 0755), "mkdir '" + dest + "'");
            if (!st.tftp_store) st.tftp_store.emplace(staging.shared_temp_for(m_o.tftp_root + "/.store"));
        }
        std::vector<std::pair<std::string, Timestamp>> dirs;
        tree.walk_under(boot, [&](const std::string& p, const Entry& stored) {
            if (p == boot) return;
            std::string rel = p.substr(boot.size());
            std::string host = dest + rel;
            if (stored.type == FileType::Directory) {
                check_call(::mkdir(host.c_str(), 0755), "mkdir '" + host + "'");
                dirs.emplace_back(host, stored.mtime);
                return;
            }
            if (rel == "/cmdline.txt") return; // the node's own, below
            // A TFTP client sees bytes only: every boot file is root's, world-readable (the TFTP
            // server runs unprivileged), whatever the FAT reader made of its mode.
            const Entry* e = stored.type == FileType::Regular ? &stored : tree.find(p);
            if (!e || e->type != FileType::Regular) {
                log::warn(what() + ": '" + p + "' is not a regular file; the TFTP folder leaves it out");
                return;
            }
            Entry plain = Entry::file(e->content, 0644, e->mtime);
            st.tftp_store->link(plain, host);
            // A Pi 3B/3B+ (and 2B v1.2) boot ROM asks the TFTP server for "bootcode.bin" without any
            // folder; only bootcode.bin then looks for SERIAL/start.elf (Raspberry Pi documentation,
            // "Network booting"). So one bootcode.bin sits in the TFTP root too. With
            // tftp-unique-root=mac dnsmasq serves it from the node's MAC folder instead when one exists.
            if (rel == "/bootcode.bin" && !folder.empty() && !st.root_bootcode) {
                st.tftp_store->link(plain, staging.shared_temp_for(m_o.tftp_root + "/bootcode.bin"));
                st.root_bootcode = true;
            }
        });
        std::string base = text::read_or_empty(tree, boot + "/cmdline.txt");
        write_text(dest + "/cmdline.txt", netboot::cmdline(base, m_o, node.name), env.now);
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it)
            set_metadata(it->first, Entry::directory(0755, it->second));
        set_metadata(dest, Entry::directory(0755, env.now));
        log::detail("  netboot [" + node.name + "]: " + m_o.tftp_root + "/" + (folder.empty() ? "" : folder + "/"));
    }

    void write_nfs(const Tree& tree, const std::string& boot, const NodeSpec& node, Staging& staging,
                   BuildState& st, const OutputWriteEnv& env) const {
        Tree root = tree.fork("netboot");
        // The boot files are served by TFTP; the mount point stays, empty.
        for (const auto& child : root.children(boot)) root.remove(boot + "/" + child);
        if (const Entry* f = root.find("/etc/fstab"); f && f->type == FileType::Regular) {
            std::string old = root.read_file("/etc/fstab");
            text::write_if_changed(root, "/etc/fstab", netboot::fstab(old, boot), 0644, env.now);
        }
        for (const char* unit : k_sd_only_units)
            if (units::find(root, unit)) units::mask(root, unit);

        std::string dest = staging.temp_for(m_o.nfs_root + "/" + node.name);
        FolderOptions fo;
        fo.copies = &st.copies;
        std::vector<std::string> shared_dirs;
        if (m_o.share) {
            if (!st.nfs_store) st.nfs_store.emplace(staging.shared_temp_for(m_o.nfs_root + "/.store"));
            // Stored paths are resolved ones: on a usrmerge system /bin is a link and its files are
            // stored under /usr/bin.
            for (const char* d : k_shared_dirs) shared_dirs.push_back(root.resolve(d));
            fo.store = &*st.nfs_store;
            fo.shared = [&](std::string_view p) {
                for (const auto& d : shared_dirs)
                    if (path::is_within(p, d) && p != d) return true;
                return false;
            };
        }
        write_folder(root, dest, fo);
        log::detail("  netboot [" + node.name + "]: " + m_o.nfs_root + "/" + node.name + "/ (" +
                    (st.nfs_store ? std::to_string(st.nfs_store->files()) + " files in the store, " : std::string()) +
                    std::to_string(st.copies.clones()) + " reflinked copies so far)");
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
    if (v->empty() || (*v)[0] != '/' || v->find_first_of(" \t\n\"#") != std::string::npos) {
        env.diag.error(options.find(key)->mark(), env.what + ": " + key + " '" + *v +
                                                      "' must be an absolute path on the server without blanks");
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
        if (auto why = validate::ipv4(*s, false)) env.diag.error(options.find("server")->mark(), env.what + ": server '" + *s + "' " + *why);
        else o.server = *s;
    }
    int prefix_len = 24;
    std::optional<uint32_t> subnet;
    if (auto s = m.string("subnet")) {
        const Mark& mark = options.find("subnet")->mark();
        if (auto why = validate::ipv4(*s, true)) env.diag.error(mark, env.what + ": subnet '" + *s + "' " + *why);
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
        if (*s == "none") o.share = false;
        else if (*s != "auto") env.diag.error(options.find("share")->mark(), env.what + ": share '" + *s + "' is not auto or none");
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
    if (env.diag.error_count() != errors || !tftp || !nfs || !config || !exp || !served) return nullptr;
    o.tftp_root = *tftp;
    o.nfs_root = *nfs;
    o.config_dir = *config;
    o.export_base = *exp;
    o.tftp_server_path = *served;
    return std::make_unique<Netboot>(std::move(o));
}

} // namespace ib
