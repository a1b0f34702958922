// Step `kubernetes_prereqs`: what kubeadm's preflight checks want of a node before containerd and the
// kubelet run: the overlay and br_netfilter modules loaded at boot, bridged traffic seen by iptables,
// IP forwarding on, and no swap.
//
//   - kubernetes_prereqs                            # all defaults
//   - kubernetes_prereqs:
//       modules: [ip_vs]                            # loaded too, after overlay and br_netfilter
//       sysctl: {net.ipv4.ip_forward: 1, vm.overcommit_memory: 1}   # override or add
//       swap: off                                   # default; `keep` leaves swap alone
//
// Writes /etc/modules-load.d/k8s.conf (one module a line) and /etc/sysctl.d/k8s.conf ("key = value"
// lines: net.bridge.bridge-nf-call-iptables, net.bridge.bridge-nf-call-ip6tables and net.ipv4.ip_forward
// at 1, in that order, then the extra keys), both root's, 0644; the step owns both files whole. Swap off
// masks dphys-swapfile.service (Raspberry Pi OS's swap file; masked even when absent, so that a later
// install stays off), comments out every swap line of /etc/fstab with "# disabled by imgbuild: ", and
// removes /var/swap.
#include "core/text_file.hpp"
#include "core/units.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>

namespace ib {

namespace {

const char* const k_fstab_prefix = "# disabled by imgbuild: ";

class KubernetesPrereqs final : public Step {
  public:
    std::vector<std::string> m_modules = {"overlay", "br_netfilter"};
    std::vector<std::pair<std::string, std::string>> m_sysctl = {{"net.bridge.bridge-nf-call-iptables", "1"},
                                                                 {"net.bridge.bridge-nf-call-ip6tables", "1"},
                                                                 {"net.ipv4.ip_forward", "1"}};
    bool m_swap_off = true;

    std::string describe() const override {
        std::string s = "kubernetes prerequisites: modules";
        for (const auto& m : m_modules)
            s += " " + m;
        s += "; sysctl";
        for (const auto& [k, v] : m_sysctl)
            s += " " + k + "=" + v;
        return s + (m_swap_off ? "; swap off" : "; swap kept");
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        std::string modules, sysctl;
        for (const auto& m : m_modules)
            modules += m + "\n";
        for (const auto& [k, v] : m_sysctl)
            sysctl += k + " = " + v + "\n";
        write_new(tree, "/etc/modules-load.d/k8s.conf", modules, env);
        write_new(tree, "/etc/sysctl.d/k8s.conf", sysctl, env);
        if (!m_swap_off) return;
        units::mask(tree, "dphys-swapfile.service");
        tree.remove("/var/swap");
        if (tree.find("/etc/fstab")) {
            text::Lines fstab = text::split_lines(text::read_or_empty(tree, "/etc/fstab"));
            for (auto& line : fstab.lines)
                if (is_swap_line(line)) line = k_fstab_prefix + line;
            text::write_if_changed(tree, "/etc/fstab", fstab.text(), 0644, env.now);
        }
    }

  private:
    static void write_new(Tree& tree, const std::string& p, const std::string& text,
                          const StepApplyEnv& env) {
        tree.mkdirs(path::parent(p), Entry::directory(0755, env.now));
        text::write_if_changed(tree, p, text, 0644, env.now);
    }

    // An active fstab entry whose third field, the type, is "swap".
    static bool is_swap_line(const std::string& line) {
        std::vector<std::string> fields;
        size_t i = 0;
        while (fields.size() < 3) {
            i = line.find_first_not_of(" \t", i);
            if (i == std::string::npos) break;
            size_t end = line.find_first_of(" \t", i);
            fields.push_back(line.substr(i, end == std::string::npos ? std::string::npos : end - i));
            i = end;
        }
        return fields.size() == 3 && fields[0][0] != '#' && fields[2] == "swap";
    }
};

bool all_of_chars(const std::string& s, std::string_view allowed) {
    return !s.empty() && s.find_first_not_of(allowed) == std::string::npos;
}

constexpr std::string_view k_alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

} // namespace

std::unique_ptr<Step> parse_kubernetes_prereqs(const Doc& options, StepParseEnv& env) {
    auto step = std::make_unique<KubernetesPrereqs>();
    if (options.is_null()) return step; // a bare `- kubernetes_prereqs`: the defaults
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    const Doc* modules = m.get("modules");
    const Doc* sysctl = m.get("sysctl");
    const Doc* swap = m.get("swap");
    m.finish();

    if (modules) {
        std::vector<const Doc*> docs;
        if (modules->is_seq())
            for (const auto& item : modules->items())
                docs.push_back(&item);
        else
            docs.push_back(modules);
        for (const Doc* d : docs) {
            auto name = doc_string(*d, env.diag, env.what + ": 'modules' item");
            if (!name) continue;
            if (!all_of_chars(*name, std::string(k_alnum) + "_-"))
                env.diag.error(d->mark(), env.what + ": '" + *name + "' is not a kernel module name");
            else if (std::find(step->m_modules.begin(), step->m_modules.end(), *name) ==
                     step->m_modules.end())
                step->m_modules.push_back(*name);
        }
    }
    if (sysctl) {
        if (!sysctl->is_map())
            env.diag.error(sysctl->mark(),
                           env.what + ": 'sysctl' must be a map of key: value, found " + sysctl->kind_name());
        for (const auto& item : sysctl->entries()) {
            // sysctl.d(5) keys are dotted or slashed paths under /proc/sys.
            if (!all_of_chars(item.key, std::string(k_alnum) + "_-./*") ||
                item.key.find_first_of("./") == std::string::npos) {
                env.diag.error(item.key_mark, env.what + ": '" + item.key +
                                                  "' is not a sysctl key such as 'net.ipv4.ip_forward'");
                continue;
            }
            auto value = doc_string(item.value, env.diag, env.what + ": sysctl '" + item.key + "'");
            if (!value) continue;
            if (value->empty() || validate::one_line(*value, true)) {
                env.diag.error(item.value.mark(),
                               env.what + ": sysctl '" + item.key + "' needs a one-line value");
                continue;
            }
            auto& list = step->m_sysctl;
            auto it =
                std::find_if(list.begin(), list.end(), [&](const auto& kv) { return kv.first == item.key; });
            if (it != list.end())
                it->second = *value;
            else
                list.emplace_back(item.key, *value);
        }
    }
    if (swap) {
        auto s = doc_string(*swap, env.diag, env.what + ": 'swap'");
        if (s && *s != "off" && *s != "keep")
            env.diag.error(swap->mark(), env.what + ": 'swap' is 'off' or 'keep', found '" + *s + "'");
        step->m_swap_off = !s || *s != "keep";
    }
    return step;
}

} // namespace ib
