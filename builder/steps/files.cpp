// Step `files`: put host files into the image, or text written in the recipe.
//
//   - files: {src: ../overlays/common, dest: /}                  # a folder: its contents, recursively
//   - files: {src: files/motd, dest: /etc/motd, mode: 0644}       # one file
//   - files: {content: "hello\n", dest: /etc/issue.d/x, owner: pi}
//
// Owners default to root (never the builder's own uid); `owner`/`group` take names from the image's
// /etc/passwd and /etc/group, or numbers. Modes keep the host's permission bits unless `mode` (files)
// or `dir_mode` (folders) is given. Host symlinks are copied as links, never followed. The host folder
// is listed when the recipe is validated; file contents are read only when an output is written.
#include "core/accounts.hpp"
#include "core/error.hpp"
#include "core/recipe.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace ib {

namespace {

struct HostItem {
    std::string rel; // "" for the top
    FileType type;
    uint32_t perm;
    std::string host; // path on the host
    uint64_t size = 0;
    std::string link;
};

class Files final : public Step {
public:
    std::string describe() const override {
        std::string s = m_inline ? "write text (" + std::to_string(m_content.size()) + " bytes)"
                                 : "copy " + m_src + (m_is_dir ? "/ (" + std::to_string(m_items.size() - 1) + " entries)" : "");
        s += " to " + m_dest;
        if (m_mode) s += " mode " + octal(*m_mode);
        if (!m_owner.empty() || !m_group.empty()) s += " owner " + (m_owner.empty() ? "root" : m_owner) + ":" +
                                                       (m_group.empty() ? "root" : m_group);
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        uint32_t uid = m_owner.empty() ? 0 : accounts::uid(tree, m_owner);
        uint32_t gid = m_group.empty() ? 0 : accounts::gid(tree, m_group);
        if (m_inline) {
            std::string dest = target_for_file(tree, "");
            tree.put(dest, Entry::file(make_blob(m_content), m_mode.value_or(0644), env.now, uid, gid));
            return;
        }
        if (!m_is_dir) {
            const HostItem& item = m_items.front();
            std::string dest = target_for_file(tree, std::string(path::name(m_src)));
            tree.put(dest, Entry::file(make_host_file(item.host, item.size), m_mode.value_or(item.perm), env.now, uid, gid));
            return;
        }
        Entry dir_tmpl = Entry::directory(0755, env.now, uid, gid);
        std::string root = tree.mkdirs(m_dest, dir_tmpl);
        for (const auto& item : m_items) {
            std::string at = item.rel.empty() ? root : path::join(root, item.rel);
            switch (item.type) {
            case FileType::Directory: {
                // Existing folders keep their metadata unless the recipe asks for a mode.
                if (const Entry* e = tree.find(at); e && e->is_dir()) {
                    if (m_dir_mode) tree.edit(tree.resolve(at))->perm = *m_dir_mode;
                    break;
                }
                tree.put(at, Entry::directory(m_dir_mode.value_or(item.perm), env.now, uid, gid));
                break;
            }
            case FileType::Symlink: tree.put(at, Entry::symlink(item.link, env.now, uid, gid)); break;
            default:
                tree.put(at, Entry::file(make_host_file(item.host, item.size), m_mode.value_or(item.perm), env.now, uid, gid));
            }
        }
    }

    std::string m_src, m_dest, m_owner, m_group, m_content;
    bool m_inline = false;
    bool m_is_dir = false;
    std::optional<uint32_t> m_mode, m_dir_mode;
    std::vector<HostItem> m_items;

private:
    static std::string octal(uint32_t v) {
        char buf[16];
        snprintf(buf, sizeof buf, "%04o", v);
        return buf;
    }
    // `dest` names the file, unless it ends in '/' or is an existing folder: then the file goes inside.
    std::string target_for_file(const Tree& tree, const std::string& name) const {
        const Entry* e = tree.find(m_dest);
        if (!name.empty() && ((e && e->is_dir()) || m_dest.back() == '/')) return path::join(m_dest, name);
        if (e && e->is_dir()) throw Error("'" + m_dest + "' is a directory in the image");
        return m_dest;
    }
};

// Lists a host folder, sorted so that the tree edits happen in a stable order.
bool scan(const std::string& host, const std::string& rel, std::vector<HostItem>& out, Diagnostics& diag,
          const Mark& mark, const std::string& what) {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& de : std::filesystem::directory_iterator(host, ec)) names.push_back(de.path().filename());
    if (ec) {
        diag.error(mark, what + ": cannot list '" + host + "': " + ec.message());
        return false;
    }
    std::sort(names.begin(), names.end());
    bool ok = true;
    for (const auto& n : names) {
        std::string h = host + "/" + n, r = rel.empty() ? n : rel + "/" + n;
        struct stat st {};
        if (::lstat(h.c_str(), &st) != 0) {
            diag.error(mark, what + ": " + errno_message("cannot stat '" + h + "'", errno));
            ok = false;
            continue;
        }
        HostItem item{r, FileType::Regular, static_cast<uint32_t>(st.st_mode & 07777), h, 0, {}};
        if (S_ISDIR(st.st_mode)) {
            item.type = FileType::Directory;
            out.push_back(item);
            ok = scan(h, r, out, diag, mark, what) && ok;
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            item.type = FileType::Symlink;
            std::error_code lec;
            item.link = std::filesystem::read_symlink(h, lec).string();
        } else if (S_ISREG(st.st_mode)) {
            item.size = static_cast<uint64_t>(st.st_size);
        } else {
            diag.error(mark, what + ": '" + h + "' is not a file, folder or symlink; put special files in with a base");
            ok = false;
            continue;
        }
        out.push_back(item);
    }
    return ok;
}

} // namespace

std::unique_ptr<Step> parse_files(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto step = std::make_unique<Files>();
    std::string source = m.one_of({"src", "content"});
    auto dest = m.string("dest", true);
    step->m_mode = m.mode("mode");
    step->m_dir_mode = m.mode("dir_mode");
    step->m_owner = m.string("owner").value_or("");
    step->m_group = m.string("group").value_or("");
    m.finish();
    // Numbers are checked here; a name's existence only once the image's /etc/passwd is known.
    for (const char* key : {"owner", "group"}) {
        const std::string& v = std::string(key) == "owner" ? step->m_owner : step->m_group;
        if (const Doc* d = options.find(key); d && !v.empty()) {
            if (auto why = validate::owner(v))
                env.diag.error(d->mark(), env.what + ": " + key + " '" + validate::shown(v) + "' " + *why);
        } else if (d && d->is_scalar() && v.empty()) {
            env.diag.error(d->mark(), env.what + ": " + key + " is empty");
        }
    }
    if (dest) {
        if (auto why = validate::one_line(*dest))
            env.diag.error(options.find("dest")->mark(),
                           env.what + ": dest '" + validate::shown(*dest) + "' " + *why);
        else if (dest->empty() || (*dest)[0] != '/')
            env.diag.error(options.find("dest")->mark(), env.what + ": dest '" + *dest + "' must be an absolute path in the image");
        step->m_dest = *dest;
    }
    if (source == "content") {
        step->m_inline = true;
        if (auto c = doc_string(*options.find("content"), env.diag, env.what + ": 'content'")) step->m_content = *c;
        return step;
    }
    if (source != "src") return nullptr;
    const Doc& src_doc = *options.find("src");
    auto src = doc_string(src_doc, env.diag, env.what + ": 'src'");
    if (!src) return nullptr;
    step->m_src = host_path(src_doc.mark(), *src);
    struct stat st {};
    if (::stat(step->m_src.c_str(), &st) != 0) {
        env.diag.error(src_doc.mark(), env.what + ": " + errno_message("src '" + step->m_src + "'", errno));
        return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
        step->m_is_dir = true;
        step->m_items.push_back({"", FileType::Directory, static_cast<uint32_t>(st.st_mode & 07777), step->m_src, 0, {}});
        scan(step->m_src, "", step->m_items, env.diag, src_doc.mark(), env.what);
    } else if (S_ISREG(st.st_mode)) {
        step->m_items.push_back({"", FileType::Regular, static_cast<uint32_t>(st.st_mode & 07777), step->m_src,
                                 static_cast<uint64_t>(st.st_size), {}});
    } else {
        env.diag.error(src_doc.mark(), env.what + ": src '" + step->m_src + "' is not a file or folder");
    }
    return step;
}

} // namespace ib
