#include "outputs/netboot.hpp"

#include "core/error.hpp"
#include "core/text_file.hpp"
#include "ext/sha256.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace ib::netboot {

namespace {

// Blanks outside double quotes separate arguments, as the kernel splits them (a="b c" is one).
std::vector<std::string> split_args(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    for (char c : text) {
        if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
            continue;
        }
        if (c == '"') quoted = !quoted;
        cur += c;
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string_view key_of(std::string_view arg) { return arg.substr(0, arg.find('=')); }

// init= runs Raspberry Pi OS's first-boot resize (init_resize.sh, firstboot) of an SD root;
// rootfstype, rootflags and fsck.repair describe the SD root; `resize` asks for a resize.
constexpr std::array<std::string_view, 5> k_sd_only = {"init", "rootfstype", "rootflags", "fsck.repair", "resize"};
// Replaced by what an NFS root needs.
constexpr std::array<std::string_view, 6> k_replaced = {"root", "nfsroot", "ip", "rw", "ro", "rootwait"};

template <size_t N>
bool among(std::string_view key, const std::array<std::string_view, N>& keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::vector<std::string> fields_of(std::string_view line) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : line) {
        if (c == ' ' || c == '\t' || c == '\r') {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

bool sd_device(std::string_view dev) {
    for (std::string_view p : {"PARTUUID=", "UUID=", "LABEL=", "/dev/mmcblk"})
        if (dev.substr(0, p.size()) == p) return true;
    return false;
}

} // namespace

std::string folder_for(const Options& o, const NodeSpec& node) {
    auto field = [&](const char* key, const char* other) {
        auto it = node.fields.find(key);
        if (it == node.fields.end() || it->second.empty())
            throw Error("node '" + node.name + "' has no " + key + ": its TFTP folder is named by it (prefix: " + key +
                        "); give the node a " + key + ", or choose prefix: " + other);
        return it->second;
    };
    switch (o.prefix) {
    case Prefix::Mac: {
        // The recipe keeps MACs as lower-case "b8:27:eb:..": dnsmasq's tftp-unique-root=mac and the
        // Pi 4/5 bootloader's TFTP_PREFIX=2 ask for "b8-27-eb-..".
        std::string mac = field("mac", "serial");
        std::replace(mac.begin(), mac.end(), ':', '-');
        return mac;
    }
    case Prefix::Serial: return field("serial", "mac"); // lower-case 8 hex digits, TFTP_PREFIX=0
    case Prefix::None: return "";
    }
    return "";
}

std::string export_path(const Options& o, const std::string& node) {
    return (o.export_base == "/" ? "" : o.export_base) + "/" + node;
}

std::string cmdline(std::string_view base, const Options& o, const std::string& node) {
    std::string nfs = "root=/dev/nfs nfsroot=" + o.server + ":" + export_path(o, node) + ",vers=" +
                      std::to_string(o.nfs_version) + ",tcp rw ip=dhcp rootwait";
    std::vector<std::string> out;
    std::set<std::string> seen;
    bool placed = false;
    for (auto& arg : split_args(base)) {
        std::string_view key = key_of(arg);
        if (key == "root" && !placed) {
            out.push_back(nfs);
            placed = true;
        }
        if (among(key, k_sd_only) || among(key, k_replaced)) continue;
        if (seen.insert(arg).second) out.push_back(arg);
    }
    if (!placed) out.push_back(nfs);
    std::string line;
    for (const auto& a : out) line += (line.empty() ? "" : " ") + a;
    return line + "\n";
}

std::string fstab(std::string_view text, const std::string& boot_mount) {
    text::Lines lines = text::split_lines(text);
    std::vector<std::string> kept;
    for (auto& line : lines.lines) {
        std::vector<std::string> f = fields_of(line);
        bool comment = !f.empty() && f[0][0] == '#';
        if (!comment && f.size() >= 2 && sd_device(f[0]) && (f[1] == "/" || f[1] == boot_mount)) {
            if (&line == &lines.lines.back()) lines.final_newline = true; // the kept last line had one
            continue;
        }
        kept.push_back(std::move(line));
    }
    lines.lines = std::move(kept);
    return lines.text();
}

std::string usr_fstab_line(const Options& o) {
    return o.server + ":" + export_path(o, k_usr_folder) + " /usr nfs ro,vers=" + std::to_string(o.nfs_version) + ",tcp 0 0\n";
}

std::string fstab_with_usr(std::string_view text, const Options& o) {
    text::Lines lines = text::split_lines(text);
    std::vector<std::string> kept;
    for (auto& line : lines.lines) {
        std::vector<std::string> f = fields_of(line);
        if (!f.empty() && f[0][0] != '#' && f.size() >= 2 && f[1] == "/usr") continue;
        kept.push_back(std::move(line));
    }
    std::string line = usr_fstab_line(o);
    kept.push_back(line.substr(0, line.size() - 1));
    lines.lines = std::move(kept);
    lines.final_newline = true;
    return lines.text();
}

std::vector<uint32_t> fsids(const std::vector<std::string>& nodes) {
    std::vector<uint32_t> out;
    std::set<uint32_t> used;
    for (const auto& name : nodes) {
        // 31 bits of the name's hash: the same node keeps its fsid from build to build, so clients
        // keep their file handles across a server restart. 0 means the NFSv4 root: never used.
        uint32_t id = static_cast<uint32_t>(std::stoul(sha256_hex("imgbuild netboot " + name).substr(0, 8), nullptr, 16)) &
                      0x7fffffffu;
        while (id == 0 || !used.insert(id).second) id = (id + 1) & 0x7fffffffu;
        out.push_back(id);
    }
    return out;
}

std::string dnsmasq_conf(const Options& o, const std::string& recipe) {
    std::string s;
    s += "# dnsmasq: proxy DHCP and TFTP for network-booting Raspberry Pis (written by imgbuild, recipe '" + recipe + "').\n";
    s += "# Serve the output's " + o.tftp_root + "/ folder at " + o.tftp_server_path +
         " (copy it there, keeping hardlinks, or bind-mount it).\n";
    s += "# Proxy mode: the network's own DHCP server keeps handing out addresses; this one only adds the\n";
    s += "# boot server. port=0: no DNS.\n";
    s += "port=0\n";
    s += "dhcp-range=" + o.subnet + ",proxy," + o.netmask + "\n";
    s += "log-dhcp\n";
    s += "enable-tftp\n";
    s += "tftp-root=" + o.tftp_server_path + "\n";
    if (o.prefix == Prefix::Mac) s += "# Each Pi reads from its own folder, named by its MAC (b8-27-eb-12-34-56).\n";
    if (o.prefix == Prefix::Mac) s += "tftp-unique-root=mac\n";
    s += "pxe-service=0,\"Raspberry Pi Boot\"\n";
    return s;
}

std::string exports(const Options& o, const std::vector<NodeRow>& nodes) {
    std::vector<std::string> names;
    for (const auto& n : nodes) names.push_back(n.name);
    if (o.share == Share::Export) names.push_back(k_usr_folder); // last: the nodes' fsids stay what they were
    std::vector<uint32_t> ids = fsids(names);
    std::string s = "# /etc/exports lines for the NFS roots (written by imgbuild): the output's " + o.nfs_root +
                    "/NODE folders, served at " + o.export_base + "/NODE.\n"
                    "# no_root_squash: root on each node owns its root filesystem. Narrow '*' to your nodes' network.\n";
    for (size_t i = 0; i < nodes.size(); ++i)
        s += export_path(o, nodes[i].name) + "  *(rw,sync,no_subtree_check,no_root_squash,fsid=" +
             std::to_string(ids[i]) + ")\n";
    if (o.share == Share::Export)
        s += "# The /usr every node mounts, read-only (share: export).\n" + export_path(o, k_usr_folder) +
             "  *(ro,sync,no_subtree_check,no_root_squash,fsid=" + std::to_string(ids.back()) + ")\n";
    return s;
}

std::string nodes_table(const Options& o, const std::vector<NodeRow>& nodes) {
    std::vector<std::array<std::string, 6>> rows = {{"NAME", "MAC", "SERIAL", "IP", "TFTP", "NFS"}};
    auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    for (const auto& n : nodes)
        rows.push_back({n.name, or_dash(n.mac), or_dash(n.serial), or_dash(n.ip),
                        o.tftp_root + (n.folder.empty() ? "" : "/" + n.folder) + "/",
                        o.server + ":" + export_path(o, n.name)});
    std::array<size_t, 6> width{};
    for (const auto& r : rows)
        for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    std::string s;
    for (const auto& r : rows) {
        std::string line;
        for (size_t c = 0; c < r.size(); ++c) {
            line += r[c];
            if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 2, ' ');
        }
        s += line + "\n";
    }
    return s;
}

} // namespace ib::netboot
