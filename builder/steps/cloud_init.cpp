// Step `cloud_init`: a cloud-init NoCloud seed (user-data, meta-data, network-config) in the image.
//
//   - cloud_init:
//       user_data: ../cloud/user-data.yaml        # a host file, or
//       user_data_inline: |                       # text in the recipe (exactly one of the two)
//         #cloud-config
//         runcmd: [...]
//       meta_data: {local-hostname: "{{node.name}}"}   # optional extra keys, after instance-id
//       instance_id: "{{node.name}}-1"            # optional; default "iid-" + 16 hex digits of a hash
//                                                 # of the seed, so it changes whenever the seed does
//       network_config: ../cloud/network.yaml     # optional host file, or network_config_inline
//       location: auto                            # auto (default) | boot | seed-dir
//       schema_check: true                        # default: cloud-init's own schema check, see below
//
// user-data must be `#cloud-config` YAML (checked here: a map, no duplicate keys), a `#!` script, or
// `## template: jinja` followed by either (not checked as YAML: Jinja may break it). network-config
// must be a YAML map with `version: 1|2`, or a `network:` map holding it. Where the host has
// cloud-init (or $IMGBUILD_CLOUD_INIT names one; set it empty to never run it), #cloud-config
// user-data must also pass `cloud-init schema`: a node's cloud-init only logs a warning for it and
// carries on with what it understood. The host's cloud-init may be older or newer than the image's,
// so `schema_check: false` turns the check off for one step.
//
// `seed-dir` writes /var/lib/cloud/seed/nocloud/; `boot` writes beside cmdline.txt in the boot folder
// (core/boot.hpp), which Raspberry Pi OS Trixie and HypriotOS read through their own datasource config
// (cmdline.txt is left alone). `auto` picks the boot folder when the image has one and it is read:
// a cloud.cfg(.d) NoCloud setting with fs_label/seedfrom/"/boot", a seed already there, or HypriotOS.
// user-data and network-config may hold secrets: 0600; meta-data 0644; all root. A network-config the
// image already has is kept unless the recipe gives one. An image without cloud-init gets the seed
// anyway, with a warning.
//
// Also a warning: an image with cloud-init but no default locale (no LANG= in /etc/default/locale)
// whose user-data sets no top-level `locale:`. cloud-init then sets en_US.UTF-8 at first boot with
// `locale-gen en_US.UTF-8`, which Debian's locale-gen ignores (it makes what /etc/locale.gen lists),
// so update-locale refuses the locale and cloud-config.service fails. Step `locale` before this one
// (C.UTF-8 needs nothing made) avoids it.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/host_file.hpp"
#include "core/host_tool.hpp"
#include "core/log.hpp"
#include "core/recipe.hpp"
#include "ext/sha256.hpp"
#include "ext/yaml.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

namespace ib {

namespace {

const std::string k_seed_dir = "/var/lib/cloud/seed/nocloud";

enum class Location { Auto, Boot, SeedDir };

// A YAML double-quoted scalar: safe for any text, and always read back as a string.
std::string yaml_quoted(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                char buf[8];
                snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

class CloudInit final : public Step {
public:
    std::string describe() const override {
        std::string s = "write a cloud-init NoCloud seed with instance-id '" + m_instance_id + "' to ";
        switch (m_location) {
        case Location::Auto: s += "the boot folder if the image reads a seed there, else " + k_seed_dir; break;
        case Location::Boot: s += "the boot folder"; break;
        case Location::SeedDir: s += k_seed_dir; break;
        }
        s += ": user-data (" + m_user_data_kind + ", " + m_user_data_from + "), meta-data";
        if (m_meta_keys) s += " (+" + std::to_string(m_meta_keys) + (m_meta_keys == 1 ? " key)" : " keys)");
        if (m_network_config) s += ", network-config (" + m_network_from + ")";
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        if (!tree.exists("/usr/bin/cloud-init") && !tree.exists("/etc/cloud"))
            log::warn(m_where + ": cloud-init is not installed in the image: the seed will be ignored");
        else if (!m_sets_locale && !has_default_locale(tree))
            log::warn(m_where + ": the image has no default locale (no LANG= in /etc/default/locale), so cloud-init "
                                "sets en_US.UTF-8 at first boot, which Debian's locale-gen does not make, and "
                                "cloud-config.service fails; add step 'locale' (C.UTF-8 needs nothing made) before "
                                "this one, or 'locale:' to user-data");
        std::string dir = folder(tree);
        tree.mkdirs(dir, Entry::directory(0755, env.now));
        tree.put(dir + "/user-data", Entry::file(make_blob(m_user_data), 0600, env.now));
        tree.put(dir + "/meta-data", Entry::file(make_blob(meta_data()), 0644, env.now));
        if (m_network_config)
            tree.put(dir + "/network-config", Entry::file(make_blob(*m_network_config), 0600, env.now));
    }

    std::string meta_data() const { return "instance-id: " + yaml_quoted(m_instance_id) + "\n" + m_meta_extra; }

    std::string m_where; // "t.yaml:3:3: step 'cloud_init'", for the warnings
    bool m_sets_locale = false; // user-data has a top-level `locale:`
    std::string m_user_data, m_user_data_kind, m_user_data_from;
    std::string m_meta_extra; // YAML lines after instance-id
    size_t m_meta_keys = 0;
    std::optional<std::string> m_network_config;
    std::string m_network_from;
    std::string m_instance_id;
    Location m_location = Location::Auto;

private:
    static bool has_default_locale(const Tree& tree) {
        const Entry* e = tree.find("/etc/default/locale");
        if (!e || e->type != FileType::Regular) return false;
        std::istringstream in(read_all(e->content));
        for (std::string line; std::getline(in, line);) {
            size_t at = line.find_first_not_of(" \t");
            if (at != std::string::npos && line.compare(at, 5, "LANG=") == 0 && line.size() > at + 5) return true;
        }
        return false;
    }

    std::string folder(const Tree& tree) const {
        if (m_location == Location::SeedDir) return k_seed_dir;
        if (m_location == Location::Boot) return require_boot_dir(tree, "location 'boot'");
        auto boot = boot_dir(tree);
        return boot && reads_boot_seed(tree, *boot) ? *boot : k_seed_dir;
    }

    static bool reads_boot_seed(const Tree& tree, const std::string& boot) {
        for (const char* name : {"/user-data", "/meta-data"})
            if (tree.exists(boot + name)) return true;
        auto text_of = [&](const std::string& p) {
            const Entry* e = tree.find(p);
            return e && e->type == FileType::Regular ? tree.read_file(p) : std::string();
        };
        if (text_of("/etc/os-release").find("HypriotOS") != std::string::npos) return true;
        std::vector<std::string> configs = {"/etc/cloud/cloud.cfg"};
        if (const Entry* d = tree.find("/etc/cloud/cloud.cfg.d"); d && d->is_dir()) {
            std::string stored = tree.resolve("/etc/cloud/cloud.cfg.d");
            for (const auto& name : tree.children(stored))
                if (name.ends_with(".cfg")) configs.push_back(stored + "/" + name);
        }
        for (const auto& p : configs) {
            std::string text = text_of(p);
            std::transform(text.begin(), text.end(), text.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            // A NoCloud datasource that looks at a file system (by label or seed path), not only the
            // seed folder: the boot partition is what such images mean.
            if (text.find("nocloud") != std::string::npos &&
                (text.find("fs_label") != std::string::npos || text.find("seedfrom") != std::string::npos ||
                 text.find("/boot") != std::string::npos))
                return true;
        }
        return false;
    }
};

// A text option's content: a host file's (`user_data: PATH`) or the recipe's (`user_data_inline`).
struct Text {
    std::string text;
    std::string from;  // the path as written, or "inline": for describe()
    std::string name;  // the file name in YAML marks
    std::string label; // "user_data 'PATH'" or "user_data_inline": for messages
    const Doc* doc = nullptr; // the option's value, for messages
};

std::optional<Text> read_text(const Doc& options, const std::string& key, StepParseEnv& env) {
    const Doc* d = options.find(key);
    if (!d || d->is_null()) return std::nullopt;
    auto value = doc_string(*d, env.diag, env.what + ": '" + key + "'");
    if (!value) return std::nullopt;
    Text t;
    t.doc = d;
    if (key.ends_with("_inline")) {
        t.text = *value;
        t.from = "inline";
        t.label = key;
        // YAML marks inside the text read "t.yaml:4:21 user_data_inline:2:3".
        t.name = d->mark().str() + " " + key;
        return t;
    }
    t.from = *value;
    t.label = key + " '" + *value + "'";
    t.name = host_path(d->mark(), *value);
    auto text = host_file::read(t.name, host_file::k_text_max, key);
    if (!text) {
        env.diag.error(d->mark(), env.what + ": " + text.error());
        return std::nullopt;
    }
    t.text = std::move(text).value();
    return t;
}

// Line `n` (from 0) of `text`, without its line end and trailing blanks.
std::string line_at(std::string_view text, size_t n) {
    for (; n > 0 && text.find('\n') != std::string_view::npos; --n) text.remove_prefix(text.find('\n') + 1);
    std::string line(n > 0 ? std::string_view() : text.substr(0, text.find('\n')));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    return line;
}

// Where a problem found in the text is reported: at `d` (or the first line) in a host file; at the
// option for inline text, whose own lines the recipe's marks cannot name.
Mark place(const Text& t, const Doc* d = nullptr) {
    if (t.from == "inline") return t.doc->mark();
    return d ? d->mark() : Mark{std::make_shared<const std::string>(t.name), 1, 1};
}

void check_schema(const Text& t, const Doc* doc, StepParseEnv& env);

// Checks user-data and returns its kind for describe().
std::string check_user_data(const Text& t, bool schema_check, StepParseEnv& env) {
    std::string line = line_at(t.text, 0);
    bool jinja = line == "## template: jinja";
    if (jinja) line = line_at(t.text, 1);
    if (line.starts_with("#!")) return jinja ? "jinja script" : "script";
    if (line != "#cloud-config") {
        std::string shown = "'" + (line.size() > 40 ? line.substr(0, 40) + "..." : line) + "'";
        if (jinja)
            env.diag.error(place(t), env.what + ": user-data: after '## template: jinja' comes '#cloud-config' or "
                                                    "a '#!' script line, not " + shown);
        else
            env.diag.error(place(t), env.what + ": user-data must start with '#cloud-config', a '#!' script line "
                                                    "or '## template: jinja'; " +
                                             (t.text.empty() ? std::string("it is empty") : "it starts with " + shown));
        return "";
    }
    if (jinja) return "jinja #cloud-config"; // Jinja is rendered on the node: not YAML yet
    size_t errors = env.diag.error_count();
    Doc doc = yaml::parse(t.text, t.name, env.diag);
    if (env.diag.error_count() > errors)
        env.diag.error(t.doc->mark(), env.what + ": " + t.label + " is not valid YAML");
    else if (!doc.is_null() && !doc.is_map())
        env.diag.error(place(t, &doc), env.what + ": #cloud-config user-data must be a YAML map, found " + doc.kind_name());
    else if (schema_check && doc.is_map() && !doc.entries().empty()) // cloud-init's schema calls an empty one "not a dict"
        check_schema(t, &doc, env);
    return "#cloud-config";
}

// The cloud-init that checks user-data: $IMGBUILD_CLOUD_INIT when set (empty: none), else the PATH's.
std::optional<std::string> host_cloud_init() {
    if (const char* forced = std::getenv("IMGBUILD_CLOUD_INIT")) return host_tool::find_program(forced);
    return host_tool::find_program("cloud-init");
}

// What `cloud-init schema` objects to in `output`: the text after "Cloud config schema errors: "
// (cloud-init 22 to 24 all say it so), else its last line.
std::string schema_complaint(const std::string& output) {
    const std::string k_lead = "Cloud config schema errors: ";
    std::string text = output;
    if (size_t at = output.find(k_lead); at != std::string::npos) text = output.substr(at + k_lead.size());
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    if (output.find(k_lead) != std::string::npos) text = text.substr(0, text.find('\n'));
    else if (size_t nl = text.rfind('\n'); nl != std::string::npos) text = text.substr(nl + 1);
    return text.empty() ? "it gave no reason" : text;
}

// Runs the host's `cloud-init schema` on #cloud-config user-data. Each text is checked once per run:
// the same user-data for 400 nodes costs one cloud-init start (about a second).
void check_schema(const Text& t, const Doc* doc, StepParseEnv& env) {
    auto program = host_cloud_init();
    if (!program) {
        log::detail(env.what + ": no cloud-init on this host: user-data not checked against its schema");
        return;
    }
    static std::map<std::string, host_tool::Result> k_checked;
    std::string key = *program + "\n" + sha256_hex(t.text);
    auto it = k_checked.find(key);
    if (it == k_checked.end())
        it = k_checked.emplace(key, host_tool::run({*program, "schema", "--config-file", "/dev/stdin"}, t.text)).first;
    const host_tool::Result& r = it->second;
    if (r.status == 0) return;
    if (r.status < 0) {
        log::warn(env.what + ": could not run '" + *program + " schema': " + r.output);
        return;
    }
    std::string complaint = schema_complaint(r.output);
    // Point at the top-level key the complaint starts with, when the user-data has it.
    Mark at = place(t, doc);
    if (doc && doc->is_map()) {
        std::string first = complaint.substr(0, complaint.find_first_of(":."));
        for (const auto& e : doc->entries())
            if (e.key == first && t.from != "inline") at = e.key_mark;
    }
    env.diag.error(at, env.what + ": cloud-init schema (" + *program + " on this host) rejects " + t.label + ": " +
                           complaint + " (give 'schema_check: false' if the image's cloud-init accepts it)");
}

void check_network_config(const Text& t, StepParseEnv& env) {
    size_t errors = env.diag.error_count();
    Doc doc = yaml::parse(t.text, t.name, env.diag);
    if (env.diag.error_count() > errors) {
        env.diag.error(t.doc->mark(), env.what + ": " + t.label + " is not valid YAML");
        return;
    }
    const Doc* body = &doc;
    if (doc.is_map() && doc.find("network")) body = doc.find("network");
    const Doc* version = body->is_map() ? body->find("version") : nullptr;
    if (!version || !version->is_scalar() || (version->str() != "1" && version->str() != "2"))
        env.diag.error(place(t, doc.is_null() ? nullptr : &doc),
                       env.what + ": network-config must be a YAML map with 'version: 2' (or 1), or a 'network:' "
                                  "map holding it");
}

// YAML 1.1 reads these as booleans or null: quoted when they are keys.
bool plain_key(const std::string& k) {
    static const std::vector<std::string> k_special = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"};
    if (k.empty() || !std::isalpha(static_cast<unsigned char>(k[0]))) return false;
    for (char c : k)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return std::find(k_special.begin(), k_special.end(), lower) == k_special.end();
}

// Appends `d` as the value of a key or list item whose line is already started at column `indent`.
// Every string is double-quoted: meta-data values are text, whatever they look like.
void emit(const Doc& d, size_t indent, std::string& out) {
    std::string pad(indent + 2, ' ');
    switch (d.kind()) {
    case Doc::Kind::Null: out += " null\n"; return;
    case Doc::Kind::Scalar: out += " " + yaml_quoted(d.str()) + "\n"; return;
    case Doc::Kind::Seq:
        if (d.items().empty()) {
            out += " []\n";
            return;
        }
        out += "\n";
        for (const auto& item : d.items()) {
            out += pad + "-";
            emit(item, indent + 2, out);
        }
        return;
    case Doc::Kind::Map:
        if (d.entries().empty()) {
            out += " {}\n";
            return;
        }
        out += "\n";
        for (const auto& e : d.entries()) {
            out += pad + (plain_key(e.key) ? e.key : yaml_quoted(e.key)) + ":";
            emit(e.value, indent + 2, out);
        }
        return;
    }
}

std::optional<std::string> instance_id_problem(const std::string& id) {
    if (id.empty()) return "is empty";
    if (id.size() > 128) return "is longer than 128 characters";
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' && c != ':')
            return std::string("contains '") + c +
                   "' (only letters, digits, '.', '_', ':' and '-': cloud-init names a folder after it)";
    return std::nullopt;
}

} // namespace

std::unique_ptr<Step> parse_cloud_init(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    size_t errors_before = env.diag.error_count();
    auto step = std::make_unique<CloudInit>();
    step->m_where = env.mark.empty() ? env.what : env.mark.str() + ": " + env.what;
    std::string user_key = m.one_of({"user_data", "user_data_inline"});
    const Doc* meta = m.get("meta_data");
    auto instance_id = m.string("instance_id");
    bool has_network = m.get("network_config") != nullptr;
    bool has_network_inline = m.get("network_config_inline") != nullptr;
    auto location = m.string("location");
    bool schema_check = m.boolean("schema_check").value_or(true);
    m.finish();

    std::string location_name = location.value_or("auto");
    const std::vector<std::string> k_locations = {"auto", "boot", "seed-dir"};
    if (location_name == "boot") step->m_location = Location::Boot;
    else if (location_name == "seed-dir") step->m_location = Location::SeedDir;
    else if (location_name != "auto")
        env.diag.error(options.find("location")->mark(), env.what + ": location '" + location_name +
                                                             "' is not auto, boot or seed-dir" +
                                                             did_you_mean(location_name, k_locations));

    if (!user_key.empty()) {
        if (auto t = read_text(options, user_key, env)) {
            step->m_user_data_kind = check_user_data(*t, schema_check, env);
            step->m_user_data = t->text;
            step->m_sets_locale = t->text.starts_with("locale:") || t->text.find("\nlocale:") != std::string::npos;
            step->m_user_data_from = t->from;
        }
    }

    if (has_network && has_network_inline)
        env.diag.error(options.find("network_config_inline")->mark(),
                       env.what + ": 'network_config', 'network_config_inline' exclude each other; give one");
    else if (auto t = read_text(options, has_network ? "network_config" : "network_config_inline", env)) {
        check_network_config(*t, env);
        step->m_network_config = t->text;
        step->m_network_from = t->from;
    }

    if (meta && !meta->is_map()) {
        env.diag.error(meta->mark(), env.what + ": 'meta_data' must be a map of keys, found " + meta->kind_name());
    } else if (meta) {
        for (const auto& e : meta->entries()) {
            if (e.key == "instance-id") {
                env.diag.error(e.key_mark, env.what + ": give the instance id as 'instance_id', not in 'meta_data'");
                continue;
            }
            step->m_meta_extra += plain_key(e.key) ? e.key : yaml_quoted(e.key);
            step->m_meta_extra += ":";
            emit(e.value, 0, step->m_meta_extra);
            ++step->m_meta_keys;
        }
    }

    if (instance_id) {
        if (auto why = instance_id_problem(*instance_id))
            env.diag.error(options.find("instance_id")->mark(), env.what + ": instance_id '" + *instance_id + "' " + *why);
        step->m_instance_id = *instance_id;
    } else {
        // Lengths keep the parts apart: no two different seeds hash the same text.
        std::string seed;
        for (const std::string& part : {location_name, step->m_user_data, step->m_meta_extra,
                                        step->m_network_config ? "+" + *step->m_network_config : std::string()})
            seed += std::to_string(part.size()) + ":" + part + "\n";
        step->m_instance_id = "iid-" + sha256_hex(seed).substr(0, 16);
    }

    if (env.diag.error_count() > errors_before) return nullptr;
    return step;
}

} // namespace ib
