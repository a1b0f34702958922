// Step `cmdline`: edit the kernel command line, cmdline.txt in the boot folder (/boot/firmware or
// /boot, core/boot.hpp).
//
//   - cmdline: cgroups                              # shorthand for {cgroups: true}
//   - cmdline:
//       remove: [quiet, splash, console=tty1]       # `key` removes every key and key=...; key=value that one
//       set: {console: "serial0,115200"}            # exactly one console=serial0,115200
//       add: [usbcore.autosuspend=-1, nosplash]     # key=value replaces key's value; a bare word once
//       cgroups: true                               # adds cgroup_enable=cpuset cgroup_enable=memory
//                                                   #      cgroup_memory=1 swapaccount=1
//
// The edits run in that order. Arguments keep their order; a new one goes at the end, a replaced one
// stays where the first of its key was (later ones with that key are dropped, as the last would win).
// cgroup_enable, cgroup_disable and console legitimately repeat with different values: `add` adds such
// an argument when that exact one is missing and never replaces another value, and `set` refuses the
// cgroup keys. `root` may be set, never removed: an image without root= does not boot. The file is
// rewritten as one line ending in '\n', and only when an argument changed.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/text_file.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <array>
#include <map>

namespace ib {

namespace {

constexpr std::array<std::string_view, 3> k_repeatable = {"cgroup_enable", "cgroup_disable", "console"};
constexpr std::array<std::string_view, 4> k_cgroup_args = {"cgroup_enable=cpuset", "cgroup_enable=memory",
                                                           "cgroup_memory=1", "swapaccount=1"};

bool repeatable(std::string_view key) {
    return std::find(k_repeatable.begin(), k_repeatable.end(), key) != k_repeatable.end();
}

std::string key_of(std::string_view arg) {
    return std::string(arg.substr(0, arg.find('=')));
}

// Splits at blanks outside double quotes, as the kernel does (param="a b" is one argument).
std::vector<std::string> split_args(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false, in_arg = false;
    for (char c : text) {
        if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            if (in_arg) out.push_back(std::move(cur));
            cur.clear();
            in_arg = false;
            continue;
        }
        if (c == '"') quoted = !quoted;
        cur += c;
        in_arg = true;
    }
    if (in_arg) out.push_back(std::move(cur));
    return out;
}

// Replaces the first argument with `arg`'s key by `arg` and drops the others with that key, or appends.
void assign(std::vector<std::string>& args, const std::string& arg) {
    std::string key = key_of(arg);
    auto first =
        std::find_if(args.begin(), args.end(), [&](const std::string& a) { return key_of(a) == key; });
    if (first == args.end()) {
        args.push_back(arg);
        return;
    }
    *first = arg;
    args.erase(std::remove_if(first + 1, args.end(), [&](const std::string& a) { return key_of(a) == key; }),
               args.end());
}

class Cmdline final : public Step {
  public:
    std::vector<std::string> m_remove, m_set, m_add; // m_add includes the cgroup arguments

    std::string describe() const override {
        std::string s = "edit cmdline.txt:";
        auto part = [&](const char* verb, const std::vector<std::string>& args) {
            if (args.empty()) return;
            s += std::string(s.back() == ':' ? " " : "; ") + verb;
            for (const auto& a : args)
                s += " " + a;
        };
        part("remove", m_remove);
        part("set", m_set);
        part("add", m_add);
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        std::string dir = require_boot_dir(tree, "editing cmdline.txt");
        std::string file = dir + "/cmdline.txt";
        const Entry* e = tree.find(file);
        if (!e) throw Error("cmdline.txt is missing in " + dir);
        std::vector<std::string> old = split_args(text::read_or_empty(tree, file));
        std::vector<std::string> args = old;
        for (const auto& r : m_remove) {
            bool bare = r.find('=') == std::string::npos;
            std::erase_if(args, [&](const std::string& a) { return bare ? key_of(a) == r : a == r; });
        }
        for (const auto& s : m_set)
            assign(args, s);
        for (const auto& a : m_add) {
            if (a.find('=') != std::string::npos && !repeatable(key_of(a)))
                assign(args, a);
            else if (std::find(args.begin(), args.end(), a) == args.end())
                args.push_back(a);
        }
        if (args == old) return; // untouched, byte for byte
        std::string line;
        for (const auto& a : args)
            line += (line.empty() ? "" : " ") + a;
        text::write_if_changed(tree, file, line + "\n", 0644, env.now);
    }
};

// One argument as written in the recipe, or the reason it is not one.
std::optional<std::string> bad_arg(const std::string& arg) {
    if (arg.empty()) return "an argument is empty";
    // cmdline.txt is one line; the kernel would read an unpaired '"' as quoting the rest of it.
    if (auto why = validate::one_line(arg)) return "'" + validate::shown(arg) + "' " + *why;
    if (std::count(arg.begin(), arg.end(), '"') % 2 != 0) return "'" + arg + "' has an unpaired '\"'";
    if (split_args(arg) != std::vector<std::string>{arg})
        return "'" + arg + "' is not one argument; give each as its own item";
    if (arg[0] == '=') return "'" + arg + "' has no name before '='";
    return std::nullopt;
}

// The strings of a string-or-list option, each with its node.
std::vector<std::pair<std::string, const Doc*>> string_items(const Doc& d, const std::string& key,
                                                             StepParseEnv& env) {
    std::vector<std::pair<std::string, const Doc*>> out;
    if (d.is_scalar()) {
        out.emplace_back(d.str(), &d);
    } else if (d.is_seq()) {
        for (const auto& item : d.items())
            if (auto s = doc_string(item, env.diag, env.what + ": '" + key + "' item"))
                out.emplace_back(*s, &item);
    } else {
        env.diag.error(d.mark(), env.what + ": '" + key + "' must be a string or a list of strings, found " +
                                     d.kind_name());
    }
    return out;
}

} // namespace

std::unique_ptr<Step> parse_cmdline(const Doc& options, StepParseEnv& env) {
    const std::string usage = "give 'cgroups' or a map of 'remove', 'set', 'add', 'cgroups'";
    auto step = std::make_unique<Cmdline>();
    bool cgroups = false;
    const Doc* cgroups_doc = &options;
    const Doc *remove_doc = nullptr, *set_doc = nullptr, *add_doc = nullptr;
    if (options.is_null()) {
        env.diag.error(options.mark(), env.what + ": nothing to do; " + usage);
        return nullptr;
    }
    if (options.is_scalar()) {
        if (options.str() != "cgroups") {
            env.diag.error(options.mark(), env.what + ": unknown shorthand '" + options.str() + "'" +
                                               did_you_mean(options.str(), {"cgroups"}) + "; " + usage);
            return nullptr;
        }
        cgroups = true;
    } else {
        MapReader m(options, env.diag, env.what);
        if (!m.valid()) return nullptr;
        remove_doc = m.get("remove");
        set_doc = m.get("set");
        add_doc = m.get("add");
        cgroups = m.boolean("cgroups").value_or(false);
        if (const Doc* c = options.find("cgroups")) cgroups_doc = c;
        m.finish();
        if (options.entries().empty()) env.diag.error(options.mark(), env.what + ": nothing to do; " + usage);
    }

    // Removals first: later options are checked against them.
    std::vector<std::string> removed_keys;
    if (remove_doc) {
        for (const auto& [arg, doc] : string_items(*remove_doc, "remove", env)) {
            if (auto why = bad_arg(arg)) {
                env.diag.error(doc->mark(), env.what + ": " + *why);
            } else if (key_of(arg) == "root") {
                env.diag.error(doc->mark(),
                               env.what + ": refusing to remove '" + arg +
                                   "': without root= the image does not boot (use 'set' to change it)");
            } else {
                step->m_remove.push_back(arg);
                if (arg.find('=') == std::string::npos) removed_keys.push_back(arg);
            }
        }
    }
    // Each single-valued key gets one value from set and add together.
    std::map<std::string, std::string> assigned;
    auto check_new = [&](const std::string& arg, const Doc& doc) {
        std::string key = key_of(arg);
        if (std::find(removed_keys.begin(), removed_keys.end(), key) != removed_keys.end() ||
            std::find(step->m_remove.begin(), step->m_remove.end(), arg) != step->m_remove.end()) {
            env.diag.error(doc.mark(), env.what + ": '" + arg + "' is both removed and added");
            return false;
        }
        if (arg.find('=') == std::string::npos || repeatable(key)) return true;
        auto [it, fresh] = assigned.emplace(key, arg);
        if (!fresh && it->second != arg) {
            env.diag.error(doc.mark(), env.what + ": '" + arg + "' gives '" + key +
                                           "' a second value (after '" + it->second + "')");
            return false;
        }
        return true;
    };
    if (set_doc) {
        if (!set_doc->is_map())
            env.diag.error(set_doc->mark(),
                           env.what + ": 'set' must be a map of key: value, found " + set_doc->kind_name());
        for (const auto& e : set_doc->entries()) {
            auto value = doc_string(e.value, env.diag, env.what + ": 'set' value of '" + e.key + "'");
            if (!value) continue;
            std::string arg = e.key + "=" + *value;
            if (e.key.empty() || e.key.find('=') != std::string::npos || bad_arg(e.key)) {
                env.diag.error(e.key_mark, env.what + ": '" + e.key + "' is not an argument name");
            } else if (repeatable(e.key) && e.key != "console") {
                env.diag.error(e.key_mark, env.what + ": '" + e.key +
                                               "' may appear more than once; use add: [" + arg + "]");
            } else if (value->empty()) {
                env.diag.error(e.value.mark(), env.what + ": 'set' value of '" + e.key + "' is empty");
            } else if (auto why = bad_arg(arg)) {
                env.diag.error(e.value.mark(), env.what + ": " + *why);
            } else if (check_new(arg, e.value)) {
                step->m_set.push_back(arg);
            }
        }
    }
    if (add_doc) {
        for (const auto& [arg, doc] : string_items(*add_doc, "add", env)) {
            if (auto why = bad_arg(arg))
                env.diag.error(doc->mark(), env.what + ": " + *why);
            else if (check_new(arg, *doc))
                step->m_add.push_back(arg);
        }
    }
    if (cgroups) {
        for (auto arg : k_cgroup_args)
            if (check_new(std::string(arg), *cgroups_doc)) step->m_add.emplace_back(arg);
    }
    return step;
}

} // namespace ib
