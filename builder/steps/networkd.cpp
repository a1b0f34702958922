// Step `networkd`: systemd-networkd .network files, networkd (and resolved) enabled, other network
// managers masked.
//
//   - networkd:
//       interfaces:
//         - name: eth0                 # Name= (globs such as en* allowed), and/or
//           mac: "{{node.mac}}"        # MACAddress=; at least one of the two
//           address: "{{node.ip}}"     # CIDR, prefix required: 10.0.0.11/24
//           gateway: 10.0.0.1          # inside the address's subnet
//           dns: [10.0.0.1, 1.1.1.1]
//           domains: [cluster.lan]     # "~domain" routing domains too
//           dhcp: false                # default: true when no address is given, else false
//           file: 10-eth0.network      # default: NN-NAME.network, NN = 10 + the interface's index
//       resolved: true                 # default: enable systemd-resolved, /etc/resolv.conf -> its stub
//       disable: [dhcpcd, networking, NetworkManager]   # default []: masked where the image has them
//       cloud_init_network: false      # default: cloud-init's own network configuration switched off
//
// Each .network file is /etc/systemd/network/FILE (0644 root): [Match] Name=, MACAddress=; [Network]
// DHCP=ipv4, Address=, Gateway=, one DNS= per server, Domains=, always in that order. IPv4 only.
//
// On an image with cloud-init, /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg (0644 root) says
// `network: {config: disabled}` unless cloud_init_network is true. Otherwise cloud-init renders its
// fallback (DHCP on the first NIC) at every first boot, for networkd as 10-cloud-init-NAME.network,
// which sorts before this step's 10-NAME.network and so wins: the node comes up on DHCP, not on its
// static address. A network-config in cloud-init's seed (step cloud_init) is then ignored as well.
#include "core/error.hpp"
#include "core/units.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace ib {

namespace {

const std::string k_network_dir = "/etc/systemd/network";
const std::string k_resolv_target = "../run/systemd/resolve/stub-resolv.conf";
const std::string k_cloud_cfg_dir = "/etc/cloud/cloud.cfg.d";
const std::string k_cloud_net_off = "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg";
const std::string k_cloud_net_off_text =
    "# Written by imgbuild's networkd step: /etc/systemd/network configures this machine's network,\n"
    "# so cloud-init writes none of its own (its fallback DHCP file would win over the step's files).\n"
    "network:\n"
    "  config: disabled\n";

// What `disable` accepts, and the units each name masks: a manager's wait-online service would
// otherwise fail at every boot once the manager itself is masked.
struct Manager {
    std::string_view name;
    std::vector<std::string> units;
};
const std::vector<Manager>& managers() {
    static const std::vector<Manager> k_managers = {
        {"dhcpcd", {"dhcpcd.service"}},
        {"networking", {"networking.service", "ifupdown-wait-online.service"}},
        {"NetworkManager", {"NetworkManager.service", "NetworkManager-wait-online.service"}},
    };
    return k_managers;
}

struct Interface {
    std::string name, mac, address, gateway, file;
    bool dhcp = true;
    std::vector<std::string> dns, domains;
};

std::string network_file(const Interface& i) {
    std::string s = "[Match]\n";
    if (!i.name.empty()) s += "Name=" + i.name + "\n";
    if (!i.mac.empty()) s += "MACAddress=" + i.mac + "\n";
    s += "\n[Network]\n";
    if (i.dhcp) s += "DHCP=ipv4\n";
    if (!i.address.empty()) s += "Address=" + i.address + "\n";
    if (!i.gateway.empty()) s += "Gateway=" + i.gateway + "\n";
    for (const auto& d : i.dns) s += "DNS=" + d + "\n";
    if (!i.domains.empty()) {
        s += "Domains=";
        for (size_t n = 0; n < i.domains.size(); ++n) s += (n ? " " : "") + i.domains[n];
        s += "\n";
    }
    return s;
}

class Networkd final : public Step {
public:
    std::string describe() const override {
        std::string s = "write";
        for (const auto& i : m_interfaces) {
            s += (&i == &m_interfaces.front() ? " " : ", ") + k_network_dir + "/" + i.file + " (";
            s += i.address.empty() ? "dhcp" : i.address + (i.gateway.empty() ? "" : " via " + i.gateway);
            if (i.dhcp && !i.address.empty()) s += " and dhcp";
            s += ")";
        }
        s += "; enable systemd-networkd";
        if (m_resolved) s += ", systemd-resolved";
        if (!m_cloud_init_network) s += "; cloud-init's network configuration off where installed";
        for (const auto& d : m_disable) s += (&d == &m_disable.front() ? "; mask " : ", ") + d;
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        // Checked before any edit: a half-switched network setup would boot without network.
        if (!units::find(tree, "systemd-networkd.service"))
            throw Error("the image has no systemd-networkd (no systemd-networkd.service unit); install the "
                        "systemd-networkd package in the base");
        if (m_resolved && !units::find(tree, "systemd-resolved.service"))
            throw Error("the image has no systemd-resolved (no systemd-resolved.service unit); install the "
                        "systemd-resolved package in the base, or set 'resolved: false'");
        tree.mkdirs(k_network_dir, Entry::directory(0755, env.now));
        for (const auto& i : m_interfaces)
            tree.put(k_network_dir + "/" + i.file, Entry::file(make_blob(network_file(i)), 0644, env.now));
        units::enable(tree, "systemd-networkd.service");
        if (m_resolved) {
            units::enable(tree, "systemd-resolved.service");
            tree.put("/etc/resolv.conf", Entry::symlink(k_resolv_target, env.now));
        }
        for (const auto& name : m_disable)
            for (const auto& m : managers())
                if (m.name == name)
                    for (const auto& unit : m.units)
                        if (units::find(tree, unit)) units::mask(tree, unit);
        // Only where cloud-init is: an /etc/cloud of our own would tell step cloud_init it is installed.
        if (!m_cloud_init_network && (tree.exists("/usr/bin/cloud-init") || tree.exists("/etc/cloud"))) {
            tree.mkdirs(k_cloud_cfg_dir, Entry::directory(0755, env.now));
            tree.put(k_cloud_net_off, Entry::file(make_blob(k_cloud_net_off_text), 0644, env.now));
        }
    }

    std::vector<Interface> m_interfaces;
    bool m_resolved = true;
    bool m_cloud_init_network = false;
    std::vector<std::string> m_disable;
};

struct Located {
    std::string value;
    const Doc* doc;
};

// The strings of a string-or-list option, each with its node for messages.
std::vector<Located> string_items(const Doc* d, StepParseEnv& env, const std::string& key) {
    std::vector<Located> out;
    if (!d) return out;
    if (d->is_scalar()) {
        out.push_back({d->str(), d});
    } else if (d->is_seq()) {
        for (const auto& item : d->items())
            if (auto s = doc_string(item, env.diag, env.what + ": '" + key + "' item")) out.push_back({*s, &item});
    } else {
        env.diag.error(d->mark(), env.what + ": '" + key + "' must be a string or a list of strings, found " +
                                      d->kind_name());
    }
    return out;
}

// The kernel's rules for interface names (dev_valid_name), which also bound a Name= glob.
std::optional<std::string> interface_name_problem(std::string_view s) {
    if (s.empty()) return "is empty";
    if (s.size() > 15) return "is longer than 15 characters";
    if (s == "." || s == "..") return "is not allowed";
    for (char c : s) {
        // Name= splits at blanks and reads quotes and '\' as systemd's quoting.
        if (c == '/' || c == ':' || c == '"' || c == '\'' || c == '\\')
            return std::string("contains '") + c + "'";
        if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
            return "contains whitespace";
    }
    return std::nullopt;
}

// A valid dotted quad as a number.
uint32_t ipv4_value(std::string_view s) {
    uint32_t v = 0;
    for (int part = 0; part < 4; ++part) {
        size_t dot = s.find('.');
        std::string_view p = s.substr(0, dot);
        uint32_t octet = 0;
        std::from_chars(p.data(), p.data() + p.size(), octet);
        v = (v << 8) | octet;
        s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    }
    return v;
}

std::string ipv4_text(uint32_t v) {
    return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." + std::to_string((v >> 8) & 255) +
           "." + std::to_string(v & 255);
}

// "10-eth0.network"; globs and a missing name fall back to what is left, or the MAC's digits.
std::string default_file(const Interface& i, size_t index) {
    std::string base;
    for (char c : i.name)
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') base += c;
    if (base.empty())
        for (char c : i.mac)
            if (c != ':') base += c;
    if (base.empty()) base = "any";
    return std::to_string(10 + index) + "-" + base + ".network";
}

struct Subnet {
    uint32_t address = 0, mask = 0;
    int prefix = 0;
};

// Checks `address` (CIDR) and returns its subnet, or nullopt after reporting.
std::optional<Subnet> check_address(const std::string& value, const Doc& doc, StepParseEnv& env) {
    if (auto why = validate::ipv4(value, true)) {
        env.diag.error(doc.mark(), env.what + ": address '" + value + "' " + *why);
        return std::nullopt;
    }
    size_t slash = value.find('/');
    if (slash == std::string::npos) {
        env.diag.error(doc.mark(), env.what + ": address '" + value + "' needs a /prefix, such as " + value + "/24");
        return std::nullopt;
    }
    Subnet net;
    std::from_chars(value.data() + slash + 1, value.data() + value.size(), net.prefix);
    net.address = ipv4_value(std::string_view(value).substr(0, slash));
    net.mask = net.prefix == 0 ? 0 : ~uint32_t{0} << (32 - net.prefix);
    // /31 and /32 have no network or broadcast address to avoid.
    if (net.prefix <= 30 && (net.address & ~net.mask) == 0) {
        env.diag.error(doc.mark(), env.what + ": address '" + value + "' is the subnet's own network address");
        return std::nullopt;
    }
    if (net.prefix <= 30 && (net.address & ~net.mask) == ~net.mask) {
        env.diag.error(doc.mark(), env.what + ": address '" + value + "' is the subnet's broadcast address");
        return std::nullopt;
    }
    return net;
}

bool check_plain_ipv4(const std::string& key, const std::string& value, const Doc& doc, StepParseEnv& env) {
    if (auto why = validate::ipv4(value, false)) {
        env.diag.error(doc.mark(), env.what + ": " + key + " '" + value + "' " + *why);
        return false;
    }
    return true;
}

// Reports every problem of one interface; the result is only used when there were none.
Interface parse_interface(const Doc& item, size_t index, StepParseEnv& env) {
    MapReader m(item, env.diag, env.what);
    Interface i;
    if (!m.valid()) return i;
    auto name = m.string("name");
    auto mac = m.string("mac");
    auto dhcp = m.boolean("dhcp");
    auto address = m.string("address");
    auto gateway = m.string("gateway");
    auto dns = string_items(m.get("dns"), env, "dns");
    auto domains = string_items(m.get("domains"), env, "domains");
    auto file = m.string("file");
    m.finish();

    if (name) {
        if (auto why = interface_name_problem(*name))
            env.diag.error(item.find("name")->mark(), env.what + ": interface name '" + *name + "' " + *why);
        i.name = *name;
    }
    if (mac) {
        if (auto why = validate::mac(*mac))
            env.diag.error(item.find("mac")->mark(), env.what + ": mac '" + *mac + "' " + *why);
        else
            i.mac = validate::normalise_mac(*mac);
    }
    if (!item.find("name") && !item.find("mac"))
        env.diag.error(item.mark(), env.what + ": an interface needs 'name' or 'mac' (or both) to match it");

    std::optional<Subnet> subnet;
    if (address) {
        subnet = check_address(*address, *item.find("address"), env);
        i.address = *address;
    }
    i.dhcp = dhcp.value_or(!address);
    if (dhcp && !*dhcp && !item.find("address"))
        env.diag.error(item.find("dhcp")->mark(),
                       env.what + ": interface has 'dhcp: false' and no address; give 'address' or drop 'dhcp'");
    if (gateway) {
        const Doc& gdoc = *item.find("gateway");
        bool valid = check_plain_ipv4("gateway", *gateway, gdoc, env);
        if (valid && !item.find("address")) {
            env.diag.error(gdoc.mark(), env.what + ": gateway '" + *gateway + "' needs 'address' (a gateway is "
                                                   "reached through the address's subnet)");
        } else if (valid && subnet) {
            uint32_t g = ipv4_value(*gateway);
            std::string net = ipv4_text(subnet->address & subnet->mask) + "/" + std::to_string(subnet->prefix);
            if ((g & subnet->mask) != (subnet->address & subnet->mask))
                env.diag.error(gdoc.mark(), env.what + ": gateway '" + *gateway + "' is not inside " + net +
                                                ", the subnet of address '" + *address + "'");
            else if (g == subnet->address)
                env.diag.error(gdoc.mark(), env.what + ": gateway '" + *gateway + "' is the interface's own address");
        }
        i.gateway = *gateway;
    }
    for (const auto& d : dns) {
        check_plain_ipv4("dns", d.value, *d.doc, env);
        i.dns.push_back(d.value);
    }
    for (const auto& d : domains) {
        // systemd's "~domain" routes queries without making it a search domain; "~." routes all.
        std::string bare = d.value.starts_with("~") ? d.value.substr(1) : d.value;
        if (d.value != "~.") {
            if (auto why = validate::hostname(bare))
                env.diag.error(d.doc->mark(), env.what + ": domain '" + d.value + "' is not a valid domain: it " + *why);
        }
        i.domains.push_back(d.value);
    }
    if (file) {
        if (validate::one_line(*file) || file->find('/') != std::string::npos || file->starts_with(".") ||
            !file->ends_with(".network") || file->size() == std::string_view(".network").size())
            env.diag.error(item.find("file")->mark(), env.what + ": file '" + validate::shown(*file) +
                                                          "' must be a plain file name ending in '.network'");
        i.file = *file;
    } else {
        i.file = default_file(i, index);
    }
    return i;
}

} // namespace

std::unique_ptr<Step> parse_networkd(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto step = std::make_unique<Networkd>();
    size_t errors_before = env.diag.error_count();
    const Doc* interfaces = m.required("interfaces");
    step->m_resolved = m.boolean("resolved").value_or(true);
    step->m_cloud_init_network = m.boolean("cloud_init_network").value_or(false);
    auto disable = string_items(m.get("disable"), env, "disable");
    m.finish();

    if (interfaces && !interfaces->is_seq()) {
        env.diag.error(interfaces->mark(), env.what + ": 'interfaces' must be a list, found " + interfaces->kind_name());
    } else if (interfaces && interfaces->items().empty()) {
        env.diag.error(interfaces->mark(), env.what + ": 'interfaces' needs at least one interface");
    } else if (interfaces) {
        const auto& items = interfaces->items();
        for (size_t n = 0; n < items.size(); ++n) {
            Interface i = parse_interface(items[n], n, env);
            for (const auto& prev : step->m_interfaces) {
                if (prev.file != i.file) continue;
                const Doc* f = items[n].find("file");
                env.diag.error(f ? f->mark() : items[n].mark(),
                               env.what + ": file '" + i.file + "' is already written for another interface");
                break;
            }
            step->m_interfaces.push_back(std::move(i));
        }
    }

    std::vector<std::string> known;
    for (const auto& mgr : managers()) known.emplace_back(mgr.name);
    for (const auto& d : disable) {
        if (std::find(known.begin(), known.end(), d.value) == known.end()) {
            env.diag.error(d.doc->mark(), env.what + ": 'disable' takes dhcpcd, networking or NetworkManager, not '" +
                                              d.value + "'" + did_you_mean(d.value, known));
        } else if (std::find(step->m_disable.begin(), step->m_disable.end(), d.value) == step->m_disable.end()) {
            step->m_disable.push_back(d.value);
        }
    }
    if (env.diag.error_count() > errors_before) return nullptr;
    return step;
}

} // namespace ib
