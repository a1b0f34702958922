// Step `ssh`: the OpenSSH server: switched on, who may log in with which key, sshd settings, host keys.
//
//   - ssh: {}                                  # just enable it
//   - ssh:
//       enable: true                           # default true; false disables ssh.service
//       authorized_keys:                       # user -> OpenSSH public key lines
//         pi: ["ssh-ed25519 AAAA... me@laptop"]
//       key_files: {pi: [../keys/me.pub]}      # host files of such lines, relative to the recipe
//       password_authentication: false         # optional
//       permit_root_login: prohibit-password   # optional: yes, no, prohibit-password, forced-commands-only
//       host_keys: keep                        # keep (default), regenerate or generate
//       seed: "cluster-{{node.name}}"          # host_keys: generate only
//
// enable: Raspberry Pi OS (a tree with a boot folder) gets the empty `ssh` flag file its first boot
// looks for, and ssh.service enabled when the image has it; other images must have ssh.service.
//
// authorized_keys: each key is checked when the recipe is read (a known type whose base64 data names
// the same type). Keys are merged into HOME/.ssh/authorized_keys (0600, in .ssh 0700, both owned by
// the user as the image's /etc/passwd says); lines already there are not added again.
//
// password_authentication, permit_root_login: written to /etc/ssh/sshd_config.d/10-imgbuild.conf when
// sshd_config includes that folder (Debian 12 and later), else edited into sshd_config itself. sshd
// takes the first value it reads, so the name sorts before cloud-init's 50-cloud-init.conf.
//
// host_keys:
//   keep        leaves /etc/ssh/ssh_host_* alone: every node built from one image shares them.
//   regenerate  deletes them; each machine makes its own at first boot, by Raspberry Pi OS's
//               regenerate_ssh_host_keys.service when the image has it, else by a small unit this
//               step adds (Debian's ssh.service runs `sshd -t` first, which fails without keys).
//   generate    writes an Ed25519 host key at build time and deletes the others. The key is a pure
//               function of `seed` (default: the step's own options) and the image's /etc/hostname,
//               so builds repeat. It is unique per node when the seed uses {{node.name}}, or when
//               the hostname step ran before this one. Whoever knows the seed can derive the private
//               key: pass a secret one with --set rather than writing it in the recipe.
//               Raspberry Pi OS's regenerate_ssh_host_keys.service, which would replace it, is disabled.
//               On an image with cloud-init, whose ssh module deletes every host key and makes new
//               ones at an instance's first boot, /etc/cloud/cloud.cfg.d/99-imgbuild-ssh-host-keys.cfg
//               (0644 root) sets ssh_deletekeys: false and ssh_genkeytypes: [] (user-data may still
//               override them).
#include "core/accounts.hpp"
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/host_file.hpp"
#include "core/openssh.hpp"
#include "core/recipe.hpp"
#include "core/units.hpp"
#include "core/validate.hpp"
#include "ext/sha256.hpp"
#include "ext/sshkey.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <cerrno>
#include <sstream>

namespace ib {

namespace {

enum class HostKeys { Keep, Regenerate, Generate };

struct UserKeys {
    std::string user;
    std::vector<std::string> lines;
};

constexpr const char* k_dropin = "/etc/ssh/sshd_config.d/10-imgbuild.conf";
constexpr const char* k_keygen_unit = "imgbuild-ssh-keygen.service";
constexpr const char* k_pios_keygen_unit = "regenerate_ssh_host_keys.service";
constexpr const char* k_cloud_cfg_dir = "/etc/cloud/cloud.cfg.d";
constexpr const char* k_cloud_keep_keys = "/etc/cloud/cloud.cfg.d/99-imgbuild-ssh-host-keys.cfg";
constexpr const char* k_cloud_keep_keys_text =
    "# Written by imgbuild's ssh step (host_keys: generate): /etc/ssh holds the host key made for this\n"
    "# machine at build time, so cloud-init neither deletes it nor makes others at first boot.\n"
    "ssh_deletekeys: false\n"
    "ssh_genkeytypes: []\n";

// The oneshot that makes missing host keys before sshd starts; `systemd-analyze verify` accepts it.
constexpr const char* k_keygen_unit_text = "[Unit]\n"
                                           "Description=Generate SSH host keys (imgbuild)\n"
                                           "Before=ssh.service\n"
                                           "ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n"
                                           "\n"
                                           "[Service]\n"
                                           "Type=oneshot\n"
                                           "ExecStart=/usr/bin/ssh-keygen -A\n"
                                           "\n"
                                           "[Install]\n"
                                           "WantedBy=multi-user.target\n";

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t\r");
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines)
        s += l + "\n";
    return s;
}

// The lower-cased keyword of an sshd_config line ("passwordauthentication"), "" for comments and blanks.
// sshd accepts "Keyword value" and "Keyword=value".
std::string keyword_of(const std::string& line) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') return "";
    return lower(t.substr(0, t.find_first_of(" \t=")));
}

// The same, for a commented-out default such as "#PasswordAuthentication yes".
std::string commented_keyword_of(const std::string& line) {
    std::string t = trim(line);
    if (t.empty() || t[0] != '#') return "";
    size_t text = t.find_first_not_of("# \t");
    return text == std::string::npos ? "" : keyword_of(t.substr(text));
}

// Whether sshd reads sshd_config.d/*.conf: an Include of it outside any Match block (inside one it
// would apply to that match only). Relative Include paths are relative to /etc/ssh.
bool includes_dropins(const std::string& config) {
    for (const auto& line : lines_of(config)) {
        std::string kw = keyword_of(line);
        if (kw == "match") return false;
        if (kw != "include") continue;
        std::stringstream args(trim(line).substr(7));
        std::string arg;
        while (args >> arg)
            if (arg == "/etc/ssh/sshd_config.d/*.conf" || arg == "sshd_config.d/*.conf") return true;
    }
    return false;
}

// Sets `keyword` in sshd_config text outside Match blocks: replaces the first line that sets it, or
// adds a line after its commented-out default, or before the first Match block, or at the end.
std::string set_sshd_option(const std::string& config, const std::string& keyword, const std::string& value) {
    std::vector<std::string> lines = lines_of(config);
    std::string want = lower(keyword);
    size_t match_at = lines.size();
    for (size_t i = 0; i < lines.size(); ++i)
        if (keyword_of(lines[i]) == "match") {
            match_at = i;
            break;
        }
    std::string line = keyword + " " + value;
    std::optional<size_t> commented;
    for (size_t i = 0; i < match_at; ++i) {
        if (keyword_of(lines[i]) == want) {
            lines[i] = line;
            return join_lines(lines);
        }
        if (!commented && commented_keyword_of(lines[i]) == want) commented = i;
    }
    size_t at = commented ? *commented + 1 : match_at;
    lines.insert(lines.begin() + static_cast<long>(at), line);
    return join_lines(lines);
}

// Text that stands for the options when no seed is given: every key and value, unambiguously.
std::string canonical(const Doc& d) {
    switch (d.kind()) {
    case Doc::Kind::Null:
        return "~";
    case Doc::Kind::Scalar:
        return std::to_string(d.str().size()) + ":" + d.str();
    case Doc::Kind::Seq: {
        std::string s = "[";
        for (const auto& item : d.items())
            s += canonical(item) + ",";
        return s + "]";
    }
    case Doc::Kind::Map: {
        std::string s = "{";
        for (const auto& e : d.entries())
            s += std::to_string(e.key.size()) + ":" + e.key + "=" + canonical(e.value) + ",";
        return s + "}";
    }
    }
    return "";
}

std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

class Ssh final : public Step {
  public:
    bool m_enable = true;
    std::vector<UserKeys> m_keys;
    std::optional<bool> m_password_authentication;
    std::optional<std::string> m_permit_root_login;
    HostKeys m_host_keys = HostKeys::Keep;
    std::string m_seed;

    std::string describe() const override {
        std::string s = m_enable ? "enable sshd" : "disable sshd";
        for (const auto& uk : m_keys)
            s += "; " + std::to_string(uk.lines.size()) + " authorized key" +
                 (uk.lines.size() == 1 ? "" : "s") + " for '" + uk.user + "'";
        for (const auto& [k, v] : sshd_settings())
            s += "; " + k + " " + v;
        if (m_host_keys == HostKeys::Regenerate)
            s += "; delete host keys, each machine makes its own at first boot";
        if (m_host_keys == HostKeys::Generate) s += "; generate an Ed25519 host key from the seed";
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        switch_service(tree, env);
        for (const auto& uk : m_keys)
            add_keys(tree, env, uk);
        configure_sshd(tree, env);
        if (m_host_keys == HostKeys::Regenerate) regenerate_host_keys(tree, env);
        if (m_host_keys == HostKeys::Generate) generate_host_key(tree, env);
    }

  private:
    std::vector<std::pair<std::string, std::string>> sshd_settings() const {
        std::vector<std::pair<std::string, std::string>> out;
        if (m_password_authentication)
            out.emplace_back("PasswordAuthentication", *m_password_authentication ? "yes" : "no");
        if (m_permit_root_login) out.emplace_back("PermitRootLogin", *m_permit_root_login);
        return out;
    }

    void switch_service(Tree& tree, const StepApplyEnv& env) const {
        auto boot = boot_dir(tree);
        bool has_unit = units::find(tree, "ssh.service").has_value();
        if (!m_enable) {
            if (boot) {
                tree.remove(*boot + "/ssh");
                tree.remove(*boot + "/ssh.txt");
            }
            units::disable(tree, "ssh.service");
            return;
        }
        if (boot) {
            // Raspberry Pi OS's sshswitch.service turns sshd on at first boot when this file exists.
            if (!tree.exists(*boot + "/ssh"))
                tree.put(*boot + "/ssh", Entry::file(make_blob(""), 0644, env.now));
        } else if (!has_unit) {
            throw Error("the image has no ssh.service: install openssh-server in the base image, or give "
                        "'enable: false'");
        }
        if (has_unit) units::enable(tree, "ssh.service");
    }

    static void own(Tree& tree, const std::string& stored, uint32_t perm, uint32_t uid, uint32_t gid) {
        const Entry* e = tree.get(stored);
        if (e->perm == perm && e->uid == uid && e->gid == gid) return;
        Entry* w = tree.edit(stored);
        w->perm = perm;
        w->uid = uid;
        w->gid = gid;
    }

    void add_keys(Tree& tree, const StepApplyEnv& env, const UserKeys& uk) const {
        auto user = accounts::find_user(tree, uk.user);
        if (!user)
            throw Error("user '" + uk.user +
                        "' is not in the image's /etc/passwd (add it with a 'users' step first)");
        const Entry* home = tree.find(user->home);
        if (!home || !home->is_dir())
            throw Error("home folder '" + user->home + "' of user '" + uk.user +
                        "' is not a folder in the image");

        std::string dot_ssh = tree.resolve(user->home + "/.ssh");
        if (const Entry* e = tree.get(dot_ssh); e && !e->is_dir())
            throw Error("'" + dot_ssh + "' is a " + std::string(type_name(e->type)) + ", not a folder");
        if (!tree.get(dot_ssh)) tree.put(dot_ssh, Entry::directory(0700, env.now, user->uid, user->gid));
        own(tree, dot_ssh, 0700, user->uid, user->gid); // sshd's StrictModes refuses a .ssh others can write

        std::string file = tree.resolve(dot_ssh + "/authorized_keys");
        std::string old;
        if (const Entry* e = tree.get(file)) {
            if (e->type != FileType::Regular)
                throw Error("'" + file + "' is a " + std::string(type_name(e->type)) + ", not a file");
            old = read_all(e->content);
        }
        std::vector<std::string> lines = lines_of(old);
        std::vector<std::string> present;
        for (const auto& l : lines)
            present.push_back(trim(l));
        for (const auto& key : uk.lines) {
            if (std::find(present.begin(), present.end(), key) != present.end()) continue;
            lines.push_back(key);
            present.push_back(key);
        }
        std::string text = join_lines(lines);
        if (!tree.get(file) || text != old)
            tree.put(file, Entry::file(make_blob(text), 0600, env.now, user->uid, user->gid));
        own(tree, file, 0600, user->uid, user->gid);
    }

    void configure_sshd(Tree& tree, const StepApplyEnv& env) const {
        auto settings = sshd_settings();
        if (settings.empty()) return;
        const Entry* config = tree.find("/etc/ssh/sshd_config");
        if (!config || config->type != FileType::Regular)
            throw Error("the image has no /etc/ssh/sshd_config to set " + settings.front().first +
                        " in: install openssh-server in the base image");
        std::string old = read_all(config->content);
        if (includes_dropins(old)) {
            std::string text =
                "# Written by imgbuild's ssh step. sshd uses the first value it reads for each keyword.\n";
            for (const auto& [k, v] : settings)
                text += k + " " + v + "\n";
            const Entry* e = tree.find(k_dropin);
            if (e && e->type == FileType::Regular && read_all(e->content) == text) return;
            tree.mkdirs("/etc/ssh/sshd_config.d", Entry::directory(0755, env.now));
            tree.put(k_dropin, Entry::file(make_blob(text), 0644, env.now));
            return;
        }
        std::string text = old;
        for (const auto& [k, v] : settings)
            text = set_sshd_option(text, k, v);
        if (text == old) return;
        std::string at = tree.write_file("/etc/ssh/sshd_config", text);
        tree.edit(at)->mtime = env.now;
    }

    static void delete_host_keys(Tree& tree) {
        for (const auto& p : tree.glob("/etc/ssh/ssh_host_*"))
            tree.remove(p);
    }

    void regenerate_host_keys(Tree& tree, const StepApplyEnv& env) const {
        delete_host_keys(tree);
        if (units::find(tree, k_pios_keygen_unit)) {
            units::enable(tree, k_pios_keygen_unit);
            return;
        }
        std::string unit = std::string("/etc/systemd/system/") + k_keygen_unit;
        const Entry* e = tree.find(unit);
        if (!e || e->type != FileType::Regular || read_all(e->content) != k_keygen_unit_text) {
            tree.mkdirs("/etc/systemd/system", Entry::directory(0755, env.now));
            tree.put(unit, Entry::file(make_blob(k_keygen_unit_text), 0644, env.now));
        }
        units::enable(tree, k_keygen_unit);
    }

    void generate_host_key(Tree& tree, const StepApplyEnv& env) const {
        std::string hostname;
        if (const Entry* e = tree.find("/etc/hostname"); e && e->type == FileType::Regular) {
            auto lines = lines_of(read_all(e->content));
            if (!lines.empty()) hostname = trim(lines.front());
        }
        std::string material = "imgbuild ssh host key v1";
        material += '\0';
        material += m_seed;
        material += '\0';
        material += hostname;
        std::string comment = "root@" + (hostname.empty() ? std::string("localhost") : hostname);
        SshKeyPair pair =
            ed25519_key_pair(hex_to_bytes(sha256_hex(material)), comment).value_or_throw("ssh host key");

        delete_host_keys(tree);
        units::disable(tree, k_pios_keygen_unit); // it would delete this key at first boot
        // Only where cloud-init is: an /etc/cloud of our own would tell step cloud_init it is installed.
        if (tree.exists("/usr/bin/cloud-init") || tree.exists("/etc/cloud")) {
            tree.mkdirs(k_cloud_cfg_dir, Entry::directory(0755, env.now));
            tree.put(k_cloud_keep_keys, Entry::file(make_blob(k_cloud_keep_keys_text), 0644, env.now));
        }
        tree.mkdirs("/etc/ssh", Entry::directory(0755, env.now));
        tree.put("/etc/ssh/ssh_host_ed25519_key", Entry::file(make_blob(pair.private_file), 0600, env.now));
        tree.put("/etc/ssh/ssh_host_ed25519_key.pub",
                 Entry::file(make_blob(pair.public_line), 0644, env.now));
    }
};

UserKeys& keys_for(std::vector<UserKeys>& all, const std::string& user) {
    for (auto& uk : all)
        if (uk.user == user) return uk;
    all.push_back({user, {}});
    return all.back();
}

void add_unique(UserKeys& uk, const std::string& line) {
    if (std::find(uk.lines.begin(), uk.lines.end(), line) == uk.lines.end()) uk.lines.push_back(line);
}

// The items of a "user -> one or a list of strings" map, each checked as a user name; calls `item`
// with the user and each value's Doc.
template <typename Fn>
void for_each_user_item(const Doc& map, const std::string& key, StepParseEnv& env, Fn item) {
    if (!map.is_map()) {
        env.diag.error(map.mark(), env.what + ": '" + key + "' must be a map of user names to lists, found " +
                                       map.kind_name());
        return;
    }
    for (const auto& e : map.entries()) {
        if (auto why = validate::account_name(e.key)) {
            env.diag.error(e.key_mark, env.what + ": '" + key + "': '" + e.key +
                                           "' is not a valid user name: it " + *why);
            continue;
        }
        if (e.value.is_seq()) {
            for (size_t i = 0; i < e.value.items().size(); ++i)
                item(e.key, e.value.items()[i], i + 1);
        } else if (e.value.is_scalar()) {
            item(e.key, e.value, size_t{1});
        } else {
            env.diag.error(e.value.mark(), env.what + ": '" + key + "' for '" + e.key +
                                               "' must be a string or a list of strings, found " +
                                               e.value.kind_name());
        }
    }
}

void parse_inline_keys(const Doc& map, StepParseEnv& env, std::vector<UserKeys>& out) {
    for_each_user_item(map, "authorized_keys", env, [&](const std::string& user, const Doc& d, size_t n) {
        std::string where = env.what + ": key " + std::to_string(n) + " for '" + user + "'";
        auto s = doc_string(d, env.diag, where);
        if (!s) return;
        auto parsed = openssh::parse_public_key(*s);
        if (!parsed.key) {
            env.diag.error(d.mark(), where + ": " + parsed.error);
            return;
        }
        add_unique(keys_for(out, user), trim(*s));
    });
}

void parse_key_files(const Doc& map, StepParseEnv& env, std::vector<UserKeys>& out) {
    for_each_user_item(map, "key_files", env, [&](const std::string& user, const Doc& d, size_t) {
        auto s = doc_string(d, env.diag, env.what + ": key file for '" + user + "'");
        if (!s) return;
        std::string host = host_path(d.mark(), *s);
        auto text = host_file::read(host, host_file::k_text_max, "key file");
        if (!text) {
            env.diag.error(d.mark(), env.what + ": " + text.error());
            return;
        }
        std::istringstream in(text.value());
        std::string line;
        size_t number = 0, found = 0;
        while (std::getline(in, line)) {
            ++number;
            std::string t = trim(line);
            if (t.empty() || t[0] == '#') continue;
            ++found;
            auto parsed = openssh::parse_public_key(t);
            if (!parsed.key) {
                env.diag.error(d.mark(), env.what + ": key on line " + std::to_string(number) + " of '" +
                                             host + "' for '" + user + "': " + parsed.error);
                continue;
            }
            add_unique(keys_for(out, user), t);
        }
        if (found == 0) env.diag.error(d.mark(), env.what + ": key file '" + host + "' holds no key");
    });
}

} // namespace

std::unique_ptr<Step> parse_ssh(const Doc& options, StepParseEnv& env) {
    auto step = std::make_unique<Ssh>();
    if (options.is_null()) return step; // `- ssh:` alone: the defaults
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    step->m_enable = m.boolean("enable").value_or(true);
    if (const Doc* d = m.get("authorized_keys")) parse_inline_keys(*d, env, step->m_keys);
    if (const Doc* d = m.get("key_files")) parse_key_files(*d, env, step->m_keys);
    step->m_password_authentication = m.boolean("password_authentication");
    if (auto v = m.string("permit_root_login")) {
        std::string s = *v == "true" ? "yes" : *v == "false" ? "no" : *v;
        if (s == "yes" || s == "no" || s == "prohibit-password" || s == "forced-commands-only")
            step->m_permit_root_login = s;
        else
            env.diag.error(options.find("permit_root_login")->mark(),
                           env.what +
                               ": permit_root_login must be yes, no, prohibit-password or "
                               "forced-commands-only, found '" +
                               *v + "'");
    }
    if (auto v = m.string("host_keys")) {
        if (*v == "keep")
            step->m_host_keys = HostKeys::Keep;
        else if (*v == "regenerate")
            step->m_host_keys = HostKeys::Regenerate;
        else if (*v == "generate")
            step->m_host_keys = HostKeys::Generate;
        else
            env.diag.error(options.find("host_keys")->mark(),
                           env.what + ": host_keys must be keep, regenerate or generate, found '" + *v + "'");
    }
    if (auto seed = m.string("seed")) {
        if (step->m_host_keys != HostKeys::Generate)
            env.diag.error(options.find("seed")->mark(),
                           env.what + ": 'seed' is only used with 'host_keys: generate'");
        step->m_seed = "seed:" + *seed;
    } else {
        step->m_seed = "options:" + canonical(options);
    }
    m.finish();
    return step;
}

} // namespace ib
