// The text the `netboot` output (outputs/netboot.cpp) writes: per-node cmdline.txt and fstab, and
// the server's dnsmasq, exports and node table. Pure functions of their arguments, tested alone.
#pragma once

#include "core/recipe.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ib::netboot {

enum class Prefix { Mac, Serial, None };
// How the nodes' NFS roots share the system's files: not at all (none); hardlinks to one stored copy
// (auto); or /usr as one read-only export of its own, nfs_root/.usr, that every node mounts (export).
enum class Share { None, Auto, Export };

// The folder under nfs_root that share: export serves as every node's /usr (EXPORT_BASE/.usr).
inline constexpr const char* k_usr_folder = ".usr";

struct Options {
    std::string server;            // IPv4 address of the TFTP and NFS server
    std::string subnet;            // network address dnsmasq answers proxy DHCP in ("10.0.0.0")
    std::string netmask;           // "255.255.255.0"
    std::string tftp_root = "tftp";  // under --out
    std::string nfs_root = "nfs";    // under --out
    std::string config_dir = "netboot"; // under --out: dnsmasq.conf, exports, nodes.txt
    std::string export_base = "/srv/nfs";  // what clients mount: EXPORT_BASE/NODE
    std::string tftp_server_path = "/srv/tftp"; // where the server serves tftp_root from
    Prefix prefix = Prefix::Mac;
    int nfs_version = 3;
    Share share = Share::Auto;
};

// The folder under tftp_root the node's bootloader asks for: "b8-27-eb-12-34-56" (mac), "a1b2c3d4"
// (serial) or "" (none: the TFTP root itself). Throws Error naming the node when it lacks the field.
std::string folder_for(const Options& o, const NodeSpec& node);

// Where `node`'s root is on the server: EXPORT_BASE/NODE.
std::string export_path(const Options& o, const std::string& node);

// `base` (the image's cmdline.txt) for booting `node` from NFS, as one line ending in '\n': root= is
// replaced by "root=/dev/nfs nfsroot=SERVER:EXPORT_BASE/NODE,vers=N,tcp rw ip=dhcp rootwait" (at the
// end without one); what only an SD root needs (init=, rootfstype=, fsck.repair=, rootflags=, resize)
// and the arguments replaced (nfsroot= ip= rw ro rootwait) go; every other argument stays, once.
std::string cmdline(std::string_view base, const Options& o, const std::string& node);

// `fstab` without the lines that mount the SD card's partitions (PARTUUID=, UUID=, LABEL= or
// /dev/mmcblk* at "/" or at `boot_mount`); every other byte stays.
std::string fstab(std::string_view text, const std::string& boot_mount);

// The fstab line that mounts the shared /usr (share: export): "SERVER:EXPORT_BASE/.usr /usr nfs
// ro,vers=N,tcp 0 0". Debian's initramfs mounts /usr from fstab before it starts init.
std::string usr_fstab_line(const Options& o);

// `fstab` with its /usr line (if any) replaced by usr_fstab_line(), at the end.
std::string fstab_with_usr(std::string_view text, const Options& o);

// NFS export fsids for `nodes` (in that order): stable numbers derived from each name, distinct.
std::vector<uint32_t> fsids(const std::vector<std::string>& nodes);

struct NodeRow {
    std::string name, mac, serial, ip, folder; // "" when the node has none
};
std::string dnsmasq_conf(const Options& o, const std::string& recipe);
std::string exports(const Options& o, const std::vector<NodeRow>& nodes);
std::string nodes_table(const Options& o, const std::vector<NodeRow>& nodes);

} // namespace ib::netboot
