// Step `users`: accounts in the image's /etc/passwd, /etc/shadow, /etc/group and /etc/gshadow.
//
//   - users:
//       - name: pi
//         uid: 1000               # default: the lowest free uid from 1000 (new users only)
//         groups: [sudo, adm]     # supplementary, added to; each must exist in the image's /etc/group
//         sudo: true              # the same as listing group sudo (false adds nothing)
//         primary_group: pi       # default: a new group named like the user, gid = uid when free
//         shell: /bin/bash        # default /bin/bash (new users only)
//         home: /home/pi          # default /home/NAME (new users only); made 0755 from /etc/skel if missing
//         gecos: "Pi User"
//         password_hash: "$6$..."  # a crypt hash ($6$, $5$, $y$, $2b$) or "!"/"*" for locked
//   - users:
//       accounts: [{name: pi, password_hash: "$y$..."}]
//       userconf: true            # default: true on Raspberry Pi OS (boot folder with issue.txt or
//       config.txt) custom_toml: false        # default false
//
// An existing user is updated: groups are added, and shell, home, gecos, primary group and password
// change when given; its uid never changes. Every line the step does not touch stays byte for byte, and
// the files keep their owners and modes. A new user gets a locked password ("!") unless one is given;
// the shadow lastchg field is the build's day (SOURCE_DATE_EPOCH). Password hashes never appear in
// messages or in --dry-run.
//
// Raspberry Pi OS: with userconf, BOOT/userconf.txt gets "name:hash" for the first user given a hash
// (not a locked one). Bookworm's first boot (userconf-pi) reads it to set up that user and skips the
// first-boot wizard that would otherwise ask for one. custom_toml writes the [user] section of
// BOOT/custom.toml, which Bookworm's init_config reads at first boot.
#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/passwd.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <set>

namespace ib {

namespace {

constexpr uint32_t k_first_uid = 1000; // login.defs UID_MIN / GID_MIN
constexpr uint32_t k_last_uid = 59999; // login.defs UID_MAX / GID_MAX
constexpr int64_t k_seconds_per_day = 86400;

struct UserSpec {
    std::string name;
    std::optional<uint32_t> uid;
    std::vector<std::string> groups;
    std::optional<std::string> primary_group, shell, home, gecos, password_hash;
};

bool crypt64(std::string_view s) {
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/')) return false;
    return true;
}

std::vector<std::string_view> dollar_fields(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t d = s.find('$', start);
        out.push_back(s.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start));
        if (d == std::string_view::npos) return out;
        start = d + 1;
    }
}

// Why `h` is not a crypt(5) hash that Debian's PAM accepts, or nullopt. Never quotes `h`.
std::optional<std::string> hash_problem(std::string_view h) {
    if (h == "!" || h == "*") return std::nullopt;
    // A field of /etc/shadow (and a quoted string of custom.toml): whatever the scheme, one line
    // without ':' or quotes.
    if (auto why = validate::one_line_without(h, ":\"\\ \t")) return *why + ", which no crypt hash does";
    if (h.starts_with("!")) h.remove_prefix(1); // a locked account that keeps its hash
    if (h.empty() || h[0] != '$')
        return "looks like a plain password, not a crypt hash: make one with `mkpasswd -m yescrypt` or "
               "`openssl passwd -6`";
    auto f = dollar_fields(h); // "", id, ..., hash
    std::string_view id = f.size() > 1 ? f[1] : "";
    auto bad = [&](const std::string& scheme) { return "is not a well-formed " + scheme + " hash"; };
    if (id == "6" || id == "5") {
        // $6$[rounds=N$]salt$hash: a 1..16 character salt, 86 (SHA-512) or 43 (SHA-256) characters of hash.
        size_t salt_at = f.size() == 5 && f[2].starts_with("rounds=") ? 3 : 2;
        size_t want = id == "6" ? 86 : 43;
        if (f.size() != salt_at + 2 || f[salt_at].empty() || f[salt_at].size() > 16 || !crypt64(f[salt_at]) ||
            f[salt_at + 1].size() != want || !crypt64(f[salt_at + 1]))
            return bad(id == "6" ? "SHA-512 ($6$)" : "SHA-256 ($5$)");
        return std::nullopt;
    }
    if (id == "y") {
        if (f.size() != 5 || f[2].empty() || f[3].empty() || !crypt64(f[2]) || !crypt64(f[3]) ||
            f[4].size() != 43 || !crypt64(f[4]))
            return bad("yescrypt ($y$)");
        return std::nullopt;
    }
    if (id == "2b" || id == "2a" || id == "2y") {
        bool cost_ok = f.size() == 4 && f[2].size() == 2 &&
                       std::isdigit(static_cast<unsigned char>(f[2][0])) &&
                       std::isdigit(static_cast<unsigned char>(f[2][1])) && f[2] >= "04" && f[2] <= "31";
        if (!cost_ok || f[3].size() != 53 || !crypt64(f[3])) return bad("bcrypt ($2b$)");
        return std::nullopt;
    }
    return "uses a scheme imgbuild does not accept ('$" + std::string(id.substr(0, 8)) +
           "$'); give a $6$, $5$, $y$ or $2b$ hash";
}

bool locked(const std::string& hash) {
    return hash.empty() || hash[0] == '!' || hash[0] == '*';
}

std::string u32(uint32_t v) {
    return std::to_string(v);
}

std::optional<uint32_t> number(const std::string& s) {
    if (s.empty() || s.size() > 10 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    uint64_t v = std::stoull(s);
    return v <= UINT32_MAX ? std::optional<uint32_t>(static_cast<uint32_t>(v)) : std::nullopt;
}

// Numbers in field `field` of every record.
std::set<uint32_t> used_ids(const passwd::Table& t, size_t field) {
    std::set<uint32_t> out;
    for (size_t i = 0; i < t.size(); ++i) {
        auto f = t.fields(i);
        if (f.size() > field)
            if (auto n = number(f[field])) out.insert(*n);
    }
    return out;
}

uint32_t lowest_free(const std::set<uint32_t>& used, const std::string& what) {
    for (uint32_t id = k_first_uid; id <= k_last_uid; ++id)
        if (!used.count(id)) return id;
    throw Error("no free " + what + " left between " + u32(k_first_uid) + " and " + u32(k_last_uid));
}

// The account files, loaded once per apply and stored back together.
struct Accounts {
    passwd::Table passwd, shadow, group;
    std::optional<passwd::Table> gshadow;
};

class Users final : public Step {
  public:
    std::vector<UserSpec> m_users;
    std::optional<bool> m_userconf; // nullopt: when the image is Raspberry Pi OS
    bool m_custom_toml = false;

    std::string describe() const override {
        std::string s = "users:";
        for (const auto& u : m_users) {
            s += " " + u.name;
            std::vector<std::string> notes;
            if (u.uid) notes.push_back("uid " + u32(*u.uid));
            if (!u.groups.empty()) notes.push_back("groups " + passwd::join_members(u.groups));
            if (u.password_hash)
                notes.push_back(locked(*u.password_hash) ? "password locked" : "password set");
            if (!notes.empty()) {
                s += " (";
                for (size_t i = 0; i < notes.size(); ++i)
                    s += (i ? ", " : "") + notes[i];
                s += ")";
            }
        }
        if (m_userconf.value_or(false)) s += "; write userconf.txt";
        if (m_custom_toml) s += "; write custom.toml [user]";
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        Accounts a{load(tree, "/etc/passwd"), load(tree, "/etc/shadow"), load(tree, "/etc/group"),
                   passwd::load(tree, "/etc/gshadow")};
        for (const auto& u : m_users)
            apply_user(a, u, env);

        passwd::store(tree, "/etc/passwd", a.passwd, env.now);
        passwd::store(tree, "/etc/shadow", a.shadow, env.now);
        passwd::store(tree, "/etc/group", a.group, env.now);
        if (a.gshadow) passwd::store(tree, "/etc/gshadow", *a.gshadow, env.now);

        for (const auto& u : m_users) {
            auto f = a.passwd.fields(*a.passwd.find(u.name));
            make_home(tree, env, f[5], *number(f[2]), *number(f[3]));
        }
        write_boot_files(tree, env);
    }

  private:
    static passwd::Table load(const Tree& tree, const char* file) {
        auto t = passwd::load(tree, file);
        if (!t) throw Error(std::string("the image has no ") + file);
        return *t;
    }

    // Explicit uids of this step's users: never handed out to another user of the same step.
    std::set<uint32_t> reserved_uids() const {
        std::set<uint32_t> out;
        for (const auto& u : m_users)
            if (u.uid) out.insert(*u.uid);
        return out;
    }

    static uint32_t gid_of(const Accounts& a, const std::string& group, const std::string& user) {
        auto i = a.group.find(group);
        std::optional<uint32_t> gid;
        if (i) {
            auto f = a.group.fields(*i);
            if (f.size() > 2) gid = number(f[2]);
        }
        if (!gid)
            throw Error("group '" + group + "' of user '" + user + "' is not in the image's /etc/group");
        return *gid;
    }

    // A new group named like the user (useradd's USERGROUPS_ENAB): gid = uid when free.
    static uint32_t add_user_group(Accounts& a, const std::string& name, uint32_t uid) {
        auto used = used_ids(a.group, 2);
        uint32_t gid = used.count(uid) ? lowest_free(used, "gid") : uid;
        a.group.add({name, "x", u32(gid), ""});
        if (a.gshadow) a.gshadow->add({name, "!", "", ""});
        return gid;
    }

    uint32_t primary_gid(Accounts& a, const UserSpec& u, uint32_t uid) const {
        std::string group = u.primary_group.value_or(u.name);
        if (a.group.find(group)) return gid_of(a, group, u.name);
        if (group != u.name) return gid_of(a, group, u.name); // throws: only the user's own group is made
        return add_user_group(a, u.name, uid);
    }

    void apply_user(Accounts& a, const UserSpec& u, const StepApplyEnv& env) const {
        auto at = a.passwd.find(u.name);
        if (u.uid) {
            auto other = a.passwd.find_field(2, u32(*u.uid));
            if (other && other != at)
                throw Error("uid " + u32(*u.uid) + " of user '" + u.name + "' is already used by user '" +
                            a.passwd.fields(*other)[0] + "' in the image's /etc/passwd");
        }
        if (at) {
            auto f = a.passwd.fields(*at);
            if (f.size() < 7)
                throw Error("the line of user '" + u.name + "' in the image's /etc/passwd is malformed");
            if (u.uid && f[2] != u32(*u.uid))
                throw Error("user '" + u.name + "' has uid " + f[2] + " in the image, not " + u32(*u.uid) +
                            "; imgbuild does not change a user's uid");
            if (u.primary_group) f[3] = u32(gid_of(a, *u.primary_group, u.name));
            if (u.gecos) f[4] = *u.gecos;
            if (u.home) f[5] = *u.home;
            if (u.shell) f[6] = *u.shell;
            a.passwd.set(*at, f);
        } else {
            std::set<uint32_t> used = used_ids(a.passwd, 2);
            for (uint32_t r : reserved_uids())
                used.insert(r);
            uint32_t uid = u.uid ? *u.uid : lowest_free(used, "uid");
            uint32_t gid = primary_gid(a, u, uid);
            a.passwd.add({u.name, "x", u32(uid), u32(gid), u.gecos.value_or(""),
                          u.home.value_or("/home/" + u.name), u.shell.value_or("/bin/bash")});
        }

        std::string today = std::to_string(env.now.sec / k_seconds_per_day);
        if (auto s = a.shadow.find(u.name)) {
            auto f = a.shadow.fields(*s);
            if (u.password_hash && (f.size() < 3 || f[1] != *u.password_hash)) {
                f.resize(std::max<size_t>(f.size(), 9));
                f[1] = *u.password_hash;
                f[2] = today;
                a.shadow.set(*s, f);
            }
        } else {
            // Debian's login.defs: PASS_MIN_DAYS 0, PASS_MAX_DAYS 99999, PASS_WARN_AGE 7.
            a.shadow.add({u.name, u.password_hash.value_or("!"), today, "0", "99999", "7", "", "", ""});
        }

        for (const auto& g : u.groups)
            add_member(a, g, u.name);
    }

    static void add_member(Accounts& a, const std::string& group, const std::string& user) {
        auto i = a.group.find(group);
        if (!i) throw Error("group '" + group + "' for user '" + user + "' is not in the image's /etc/group");
        auto add_to = [&](passwd::Table& t, size_t line, size_t field) {
            auto f = t.fields(line);
            if (f.size() <= field) f.resize(field + 1);
            auto m = passwd::members(f[field]);
            if (std::find(m.begin(), m.end(), user) != m.end()) return;
            m.push_back(user);
            f[field] = passwd::join_members(m);
            t.set(line, f);
        };
        add_to(a.group, *i, 3);
        if (a.gshadow)
            if (auto j = a.gshadow->find(group)) add_to(*a.gshadow, *j, 3); // name:password:admins:members
    }

    // A missing home is made as useradd -m would: 0755, owned by the user, with /etc/skel's contents.
    static void make_home(Tree& tree, const StepApplyEnv& env, const std::string& home, uint32_t uid,
                          uint32_t gid) {
        if (tree.find(home)) return;
        std::string root = tree.put(home, Entry::directory(0755, env.now, uid, gid));
        const Entry* skel = tree.find("/etc/skel");
        if (!skel || !skel->is_dir()) return;
        std::string skel_at = tree.resolve("/etc/skel");
        std::vector<std::pair<std::string, Entry>> copies;
        tree.walk_under(skel_at, [&](const std::string& p, const Entry& e) {
            if (p == skel_at) return;
            Entry c = e.type == FileType::Hardlink ? *tree.find(p, false) : e;
            c.hardlinked = false;
            c.uid = uid;
            c.gid = gid;
            c.mtime = env.now;
            copies.emplace_back(root + p.substr(skel_at.size()), std::move(c));
        });
        for (auto& [p, e] : copies)
            tree.put(p, std::move(e));
    }

    void write_boot_files(Tree& tree, const StepApplyEnv& env) const {
        const UserSpec* first = nullptr;
        for (const auto& u : m_users)
            if (u.password_hash && !locked(*u.password_hash)) {
                first = &u;
                break;
            }
        auto boot = boot_dir(tree);
        bool userconf = m_userconf
                            ? *m_userconf
                            : boot && (tree.find(*boot + "/issue.txt") || tree.find(*boot + "/config.txt"));
        if (userconf && first) {
            std::string dir = boot ? *boot : require_boot_dir(tree, "'userconf: true'");
            put_if_changed(tree, env, dir + "/userconf.txt",
                           first->name + ":" + *first->password_hash + "\n");
        }
        if (m_custom_toml && first) {
            std::string dir = boot ? *boot : require_boot_dir(tree, "'custom_toml: true'");
            std::string p = dir + "/custom.toml";
            const Entry* e = tree.find(p);
            std::string old = e && e->type == FileType::Regular ? read_all(e->content) : "";
            put_if_changed(tree, env, p, with_user_section(old, *first));
        }
    }

    static void put_if_changed(Tree& tree, const StepApplyEnv& env, const std::string& p,
                               const std::string& text) {
        const Entry* e = tree.find(p);
        if (e && e->type == FileType::Regular && read_all(e->content) == text) return;
        if (e && e->type == FileType::Regular) {
            std::string at = tree.write_file(p, text);
            tree.edit(at)->mtime = env.now;
        } else {
            tree.put(p, Entry::file(make_blob(text), 0644, env.now));
        }
    }

    // custom.toml with its [user] section replaced (or added); other sections stay as they are.
    static std::string with_user_section(const std::string& old, const UserSpec& u) {
        std::string section = "[user]\nname = \"" + u.name + "\"\npassword = \"" + *u.password_hash +
                              "\"\npassword_encrypted = true\n";
        if (old.empty())
            return "# Raspberry Pi OS first-boot settings, read by init_config.\nconfig_version = 1\n\n" +
                   section;
        std::string out;
        bool in_user = false, placed = false;
        size_t start = 0;
        while (start < old.size()) {
            size_t nl = old.find('\n', start);
            std::string line =
                old.substr(start, nl == std::string::npos ? std::string::npos : nl - start + 1);
            start = nl == std::string::npos ? old.size() : nl + 1;
            std::string t = line.substr(0, line.find_first_of("\r\n"));
            if (!t.empty() && t[0] == '[') {
                bool was_user = in_user;
                in_user = t == "[user]";
                if (in_user) {
                    out += section;
                    placed = true;
                    continue;
                }
                if (!out.empty() && out.back() != '\n') out += '\n';
                if (was_user) out += '\n';
            }
            if (!in_user) out += line;
        }
        if (!placed) out += (out.empty() || out.back() == '\n' ? "\n" : "\n\n") + section;
        return out;
    }
};

// A value for a passwd field: one line, no ':'.
bool field_ok(const Doc& d, const std::string& value, const std::string& what, StepParseEnv& env,
              bool absolute) {
    // A field of /etc/passwd: one line, fields split at ':'.
    if (auto why = validate::one_line_without(value, ":")) {
        env.diag.error(d.mark(), env.what + ": " + what + " '" + validate::shown(value) + "' " + *why +
                                     " (passwd fields must not contain ':' or a line break)");
        return false;
    }
    if (absolute && (value.empty() || value[0] != '/')) {
        env.diag.error(d.mark(), env.what + ": " + what + " '" + value + "' must be an absolute path");
        return false;
    }
    return true;
}

bool name_ok(const Doc& d, const std::string& name, const std::string& kind, StepParseEnv& env) {
    if (auto why = validate::account_name(name)) {
        env.diag.error(d.mark(), env.what + ": '" + name + "' is not a valid " + kind + " name: it " + *why);
        return false;
    }
    return true;
}

std::optional<UserSpec> parse_user(const Doc& item, StepParseEnv& env) {
    MapReader m(item, env.diag, env.what);
    if (!m.valid()) return std::nullopt;
    UserSpec u;
    bool ok = true;
    auto name = m.string("name", true);
    if (!name || !name_ok(*item.find("name"), *name, "user", env)) ok = false;
    if (name) u.name = *name;
    if (const Doc* d = m.get("uid")) {
        if (auto v = doc_uint(*d, env.diag, env.what + ": 'uid'", UINT32_MAX - 1))
            u.uid = static_cast<uint32_t>(*v);
        if (u.uid && *u.uid == 0 && u.name != "root") {
            env.diag.error(d->mark(), env.what + ": uid 0 is root's; give '" + u.name + "' another uid");
            ok = false;
        }
    }
    if (const Doc* d = m.get("groups")) {
        std::vector<const Doc*> items;
        if (d->is_seq())
            for (const auto& g : d->items())
                items.push_back(&g);
        else
            items.push_back(d);
        for (const Doc* g : items)
            if (auto s = doc_string(*g, env.diag, env.what + ": 'groups' item");
                s && name_ok(*g, *s, "group", env))
                if (std::find(u.groups.begin(), u.groups.end(), *s) == u.groups.end()) u.groups.push_back(*s);
    }
    if (m.boolean("sudo").value_or(false) &&
        std::find(u.groups.begin(), u.groups.end(), "sudo") == u.groups.end())
        u.groups.push_back("sudo");
    if (auto g = m.string("primary_group")) {
        if (name_ok(*item.find("primary_group"), *g, "group", env)) u.primary_group = g;
    }
    if (auto s = m.string("shell"); s && field_ok(*item.find("shell"), *s, "shell", env, true)) u.shell = s;
    if (auto s = m.string("home"); s && field_ok(*item.find("home"), *s, "home", env, true)) u.home = s;
    if (auto s = m.string("gecos"); s && field_ok(*item.find("gecos"), *s, "gecos", env, false)) u.gecos = s;
    if (const Doc* d = m.get("password_hash")) {
        if (auto h = doc_string(*d, env.diag, env.what + ": 'password_hash'")) {
            if (auto why = hash_problem(*h))
                env.diag.error(d->mark(), env.what + ": password_hash of '" + u.name + "' " + *why);
            else
                u.password_hash = h;
        }
    }
    m.finish();
    if (!ok) return std::nullopt;
    return u;
}

} // namespace

std::unique_ptr<Step> parse_users(const Doc& options, StepParseEnv& env) {
    auto step = std::make_unique<Users>();
    const Doc* list = &options;
    std::optional<MapReader> m;
    if (options.is_map()) {
        m.emplace(options, env.diag, env.what);
        list = m->required("accounts");
        step->m_userconf = m->boolean("userconf");
        step->m_custom_toml = m->boolean("custom_toml").value_or(false);
        m->finish();
        if (!list) return nullptr;
    }
    if (!list->is_seq()) {
        env.diag.error(list->mark(), env.what + ": expected a list of users, found " + list->kind_name());
        return nullptr;
    }
    if (list->items().empty()) env.diag.error(list->mark(), env.what + ": the list of users is empty");
    for (const auto& item : list->items()) {
        auto u = parse_user(item, env);
        if (!u) continue;
        for (const auto& other : step->m_users) {
            if (other.name == u->name)
                env.diag.error(item.mark(), env.what + ": user '" + u->name + "' is listed twice");
            else if (u->uid && other.uid == u->uid)
                env.diag.error(item.mark(), env.what + ": uid " + u32(*u->uid) + " is given to both '" +
                                                other.name + "' and '" + u->name + "'");
        }
        step->m_users.push_back(std::move(*u));
    }
    bool any_hash = std::any_of(step->m_users.begin(), step->m_users.end(), [](const UserSpec& u) {
        return u.password_hash && !locked(*u.password_hash);
    });
    if (!any_hash) {
        if (step->m_userconf.value_or(false))
            env.diag.error(options.find("userconf")->mark(),
                           env.what + ": 'userconf: true' needs a user with a password_hash");
        if (step->m_custom_toml)
            env.diag.error(options.find("custom_toml")->mark(),
                           env.what + ": 'custom_toml: true' needs a user with a password_hash");
    }
    return step;
}

} // namespace ib
