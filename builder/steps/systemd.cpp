// Step `systemd`: enable, disable, mask and unmask units and choose the default target, as systemctl
// would in the image (core/units.hpp): links under /etc/systemd/system, nothing runs.
//
//   - systemd:
//       enable: [ssh.service, systemd-networkd.service]   # a string or a list, each option
//       disable: bluetooth.service
//       mask: [dphys-swapfile.service]
//       unmask: [getty@tty1.service]
//       default_target: multi-user.target
//
// They run in the order unmask, disable, mask, enable, default_target. A unit may be in one of enable,
// disable and mask only (unmask with enable is fine: it is how a masked unit comes back). enable,
// disable and default_target need the unit in the image; mask does not, as systemctl masks absent
// units too, but it refuses to replace a unit file that sits in /etc/systemd/system. Enabling a unit
// that stays masked is an error.
#include "core/error.hpp"
#include "core/units.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <array>
#include <map>

namespace ib {

namespace {

const std::string k_etc = "/etc/systemd/system";
constexpr std::array<std::string_view, 11> k_types = {
    "service", "socket", "target", "timer", "mount", "automount", "path", "swap", "slice", "scope", "device"};

class Systemd final : public Step {
  public:
    std::vector<std::string> m_unmask, m_disable, m_mask, m_enable;
    std::string m_default_target;

    std::string describe() const override {
        std::string s = "systemd:";
        auto part = [&](const char* verb, const std::vector<std::string>& units) {
            if (units.empty()) return;
            s += std::string(s.back() == ':' ? " " : "; ") + verb;
            for (const auto& u : units)
                s += " " + u;
        };
        part("unmask", m_unmask);
        part("disable", m_disable);
        part("mask", m_mask);
        part("enable", m_enable);
        if (!m_default_target.empty())
            s += std::string(s.back() == ':' ? " " : "; ") + "default " + m_default_target;
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        for (const auto& u : m_unmask)
            units::unmask(tree, u);
        for (const auto& u : m_disable) {
            if (!units::find(tree, u))
                throw Error("cannot disable systemd unit '" + u + "': it is not in the image");
            units::disable(tree, u);
        }
        for (const auto& u : m_mask) {
            const Entry* e = tree.find(k_etc + "/" + u, false);
            if (e && e->type == FileType::Regular)
                throw Error("cannot mask systemd unit '" + u + "': " + k_etc + "/" + u +
                            " is a unit file, which masking would delete");
            units::mask(tree, u);
        }
        for (const auto& u : m_enable) {
            if (units::is_masked(tree, u))
                throw Error("systemd unit '" + u + "' is masked; list it under 'unmask' too to enable it");
            units::enable(tree, u);
        }
        if (!m_default_target.empty()) set_default(tree, env);
    }

  private:
    // default.target -> the target's unit file, as `systemctl set-default` links it.
    void set_default(Tree& tree, const StepApplyEnv& env) const {
        auto unit = units::find(tree, m_default_target);
        if (!unit) throw Error("default target '" + m_default_target + "' is not in the image");
        std::string link = k_etc + "/default.target";
        if (const Entry* e = tree.get(link); e && e->type == FileType::Symlink && e->link == *unit) return;
        tree.mkdirs(k_etc, Entry::directory(0755, env.now));
        tree.put(link, Entry::symlink(*unit, env.now));
    }
};

// Why `name` is not a unit name, with a guess at the one meant; nullopt when it is one.
std::optional<std::string> bad_unit(const std::string& name) {
    if (name.empty()) return "a unit name is empty";
    if (name.size() > 255 ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@") !=
            std::string::npos)
        return "'" + name + "' is not a systemd unit name";
    size_t dot = name.rfind('.');
    if (dot == 0) return "'" + name + "' has no name before its type";
    std::string type = dot == std::string::npos ? "" : name.substr(dot + 1);
    if (std::find(k_types.begin(), k_types.end(), type) != k_types.end()) return std::nullopt;
    std::vector<std::string> types(k_types.begin(), k_types.end());
    std::string near = type.empty() ? "" : closest(type, types);
    std::string guess = near.empty() ? name + ".service" : name.substr(0, dot + 1) + near;
    return "'" + name + "' does not end in a unit type such as .service or .target (did you mean '" + guess +
           "'?)";
}

} // namespace

std::unique_ptr<Step> parse_systemd(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto step = std::make_unique<Systemd>();
    const std::vector<std::pair<std::string, std::vector<std::string>*>> lists = {
        {"unmask", &step->m_unmask},
        {"disable", &step->m_disable},
        {"mask", &step->m_mask},
        {"enable", &step->m_enable}};
    std::map<std::string, std::string> verb_of; // unit -> enable, disable or mask
    for (const auto& [key, list] : lists) {
        const Doc* d = m.get(key);
        if (!d) continue;
        std::vector<const Doc*> docs;
        if (d->is_seq())
            for (const auto& item : d->items())
                docs.push_back(&item);
        else
            docs.push_back(d);
        for (const Doc* item : docs) {
            auto name = doc_string(*item, env.diag, env.what + ": '" + key + "' item");
            if (!name) continue;
            if (auto why = bad_unit(*name)) {
                env.diag.error(item->mark(), env.what + ": " + *why);
                continue;
            }
            if (key == "mask" &&
                std::find(step->m_unmask.begin(), step->m_unmask.end(), *name) != step->m_unmask.end()) {
                env.diag.error(item->mark(),
                               env.what + ": '" + *name + "' is under both 'unmask' and 'mask'");
                continue;
            }
            if (key != "unmask") {
                auto [it, fresh] = verb_of.emplace(*name, key);
                if (!fresh && it->second != key) {
                    env.diag.error(item->mark(), env.what + ": '" + *name + "' is under both '" + it->second +
                                                     "' and '" + key + "'");
                    continue;
                }
            }
            if (std::find(list->begin(), list->end(), *name) == list->end()) list->push_back(*name);
        }
    }
    if (auto target = m.string("default_target")) {
        const Doc& d = *options.find("default_target");
        if (auto why = bad_unit(*target))
            env.diag.error(d.mark(), env.what + ": " + *why);
        else if (!target->ends_with(".target") || *target == "default.target")
            env.diag.error(d.mark(), env.what + ": default_target '" + *target +
                                         "' must be a target such as 'multi-user.target'");
        else
            step->m_default_target = *target;
    }
    m.finish();
    if (options.entries().empty())
        env.diag.error(options.mark(),
                       env.what +
                           ": nothing to do; give 'enable', 'disable', 'mask', 'unmask' or 'default_target'");
    return step;
}

} // namespace ib
