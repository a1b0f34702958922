#include "core/tree.hpp"

#include "core/error.hpp"

#include <algorithm>

namespace ib {

namespace {
constexpr int k_max_links = 40; // as the kernel's MAXSYMLINKS
}

std::string_view type_name(FileType type) {
    switch (type) {
    case FileType::Regular: return "file";
    case FileType::Directory: return "directory";
    case FileType::Symlink: return "symlink";
    case FileType::Hardlink: return "hardlink";
    case FileType::CharDevice: return "character device";
    case FileType::BlockDevice: return "block device";
    case FileType::Fifo: return "fifo";
    case FileType::Socket: return "socket";
    }
    return "?";
}

Entry Entry::directory(uint32_t perm, Timestamp mtime, uint32_t uid, uint32_t gid) {
    Entry e;
    e.type = FileType::Directory;
    e.perm = perm;
    e.mtime = mtime;
    e.uid = uid;
    e.gid = gid;
    return e;
}

Entry Entry::file(ContentRef content, uint32_t perm, Timestamp mtime, uint32_t uid, uint32_t gid) {
    Entry e;
    e.type = FileType::Regular;
    e.content = std::move(content);
    e.perm = perm;
    e.mtime = mtime;
    e.uid = uid;
    e.gid = gid;
    return e;
}

Entry Entry::symlink(std::string target, Timestamp mtime, uint32_t uid, uint32_t gid) {
    Entry e;
    e.type = FileType::Symlink;
    e.link = std::move(target);
    e.perm = 0777;
    e.mtime = mtime;
    e.uid = uid;
    e.gid = gid;
    return e;
}

Tree::Tree(std::string layer_name, Timestamp root_mtime) : m_top(std::make_shared<Layer>()) {
    m_top->name = std::move(layer_name);
    m_top->map.emplace("/", Slot{false, Entry::directory(0755, root_mtime)});
    m_default_mtime = root_mtime;
}

void Tree::push_layer(std::string name) {
    m_lower.push_back(m_top);
    m_top = std::make_shared<Layer>();
    m_top->name = std::move(name);
}

Tree Tree::fork(std::string name) const {
    // The copy shares this tree's top layer read-only; whichever writes to it next copies it first.
    Tree copy(*this);
    copy.push_layer(std::move(name));
    return copy;
}

Tree::Map& Tree::top() {
    if (m_top.use_count() > 1) m_top = std::make_shared<Layer>(*m_top);
    return m_top->map;
}

std::vector<LayerInfo> Tree::layers() const {
    std::vector<LayerInfo> out;
    auto info = [](const Layer& layer) {
        LayerInfo li{layer.name, 0, 0};
        for (const auto& [p, s] : layer.map) (s.whiteout ? li.whiteouts : li.entries)++;
        return li;
    };
    for (const auto& layer : m_lower) out.push_back(info(*layer));
    out.push_back(info(*m_top));
    return out;
}

const Tree::Slot* Tree::slot(std::string_view p) const {
    if (auto it = m_top->map.find(p); it != m_top->map.end()) return &it->second;
    for (auto layer = m_lower.rbegin(); layer != m_lower.rend(); ++layer)
        if (auto it = (*layer)->map.find(p); it != (*layer)->map.end()) return &it->second;
    return nullptr;
}

bool Tree::in_lower(std::string_view p) const {
    for (const auto& layer : m_lower)
        if (layer->map.find(p) != layer->map.end()) return true;
    return false;
}

const Entry* Tree::get(std::string_view stored_path) const {
    const Slot* s = slot(stored_path);
    return s && !s->whiteout ? &s->entry : nullptr;
}

std::string Tree::resolve(std::string_view p, bool follow_last) const {
    // A stack of components still to walk, the next one last.
    std::vector<std::string> todo;
    auto push_components = [&todo](std::string_view s) {
        auto parts = path::split(s);
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.emplace_back(*it);
    };
    push_components(p);
    std::string cur = "/";
    int links = 0;
    while (!todo.empty()) {
        std::string comp = std::move(todo.back());
        todo.pop_back();
        if (comp == ".") continue;
        if (comp == "..") {
            cur = path::parent(cur); // the parent of "/" is "/": a chroot, never the host
            continue;
        }
        std::string next = cur == "/" ? "/" + comp : cur + "/" + comp;
        const Entry* e = get(next);
        if (e && e->type == FileType::Symlink && (!todo.empty() || follow_last)) {
            if (++links > k_max_links)
                throw Error("path '" + std::string(p) + "': too many levels of symbolic links");
            if (!e->link.empty() && e->link[0] == '/') cur = "/";
            push_components(e->link);
            continue;
        }
        cur = std::move(next);
    }
    return cur;
}

const Entry* Tree::find(std::string_view p, bool follow_last) const {
    const Entry* e = get(resolve(p, follow_last));
    if (e && e->type == FileType::Hardlink) return get(e->link);
    return e;
}

void Tree::merge_walk(std::string_view under, bool whole, const Visitor& visit) const {
    std::vector<const Layer*> layers;
    for (const auto& l : m_lower) layers.push_back(l.get());
    layers.push_back(m_top.get());
    std::vector<Map::const_iterator> its, ends;
    for (const Layer* l : layers) {
        its.push_back(whole ? l->map.begin() : l->map.lower_bound(under));
        ends.push_back(l->map.end());
    }
    path::Less less;
    while (true) {
        // The smallest key among the layer heads; the topmost layer holding it wins.
        const std::string* key = nullptr;
        for (size_t i = 0; i < its.size(); ++i)
            if (its[i] != ends[i] && (!key || less(its[i]->first, *key))) key = &its[i]->first;
        if (!key) return;
        if (!whole && !path::is_within(*key, under)) return;
        const Slot* winner = nullptr;
        std::string current = *key;
        for (size_t i = 0; i < its.size(); ++i) {
            if (its[i] != ends[i] && its[i]->first == current) {
                winner = &its[i]->second; // later layers are higher
                ++its[i];
            }
        }
        if (!winner->whiteout) visit(current, winner->entry);
    }
}

void Tree::walk(const Visitor& visit) const { merge_walk("/", true, visit); }

void Tree::walk_under(std::string_view dir, const Visitor& visit) const { merge_walk(dir, dir == "/", visit); }

std::vector<std::string> Tree::children(std::string_view dir) const {
    std::vector<std::string> out;
    std::string d(dir);
    walk_under(d, [&](const std::string& p, const Entry&) {
        if (p != d && path::parent(p) == d) out.emplace_back(path::name(p));
    });
    return out;
}

size_t Tree::size() const {
    size_t n = 0;
    walk([&n](const std::string&, const Entry&) { ++n; });
    return n;
}

std::vector<std::string> Tree::glob(std::string_view pattern) const {
    std::string normal = path::normalise(pattern);
    auto parts = path::split(normal); // views into `normal`
    std::vector<std::string> current = {"/"};
    for (size_t i = 0; i < parts.size(); ++i) {
        bool last = i + 1 == parts.size();
        std::vector<std::string> next;
        for (const auto& dir : current) {
            // Directories on the way resolve through links; the final name is matched as stored.
            std::string base = resolve(dir, true);
            if (!path::has_glob(parts[i])) {
                std::string candidate = base == "/" ? "/" + std::string(parts[i]) : base + "/" + std::string(parts[i]);
                if (get(last ? candidate : resolve(candidate, true))) next.push_back(candidate);
                continue;
            }
            const Entry* d = get(base);
            if (!d || !d->is_dir()) continue;
            for (const auto& child : children(base))
                if (path::glob_match(parts[i], child)) next.push_back(base == "/" ? "/" + child : base + "/" + child);
        }
        current = std::move(next);
    }
    if (parts.empty()) return {"/"};
    std::sort(current.begin(), current.end(), path::Less());
    current.erase(std::unique(current.begin(), current.end()), current.end());
    return current;
}

std::string Tree::read_file(std::string_view p) const {
    const Entry* e = find(p);
    if (!e) throw Error("'" + std::string(p) + "' does not exist in the image");
    if (e->type != FileType::Regular)
        throw Error("'" + std::string(p) + "' is a " + std::string(type_name(e->type)) + ", not a file");
    return read_all(e->content);
}

std::string Tree::resolve_parent(std::string_view p, bool make_parents) {
    std::string normal = path::normalise(p);
    if (normal == "/") return "/";
    std::string dir = resolve(path::parent(p), true);
    // Walk down the resolved parent, which holds no symlinks now, checking or creating each level.
    std::string cur;
    for (auto comp : path::split(dir)) {
        cur += "/";
        cur += comp;
        const Entry* e = get(cur);
        if (!e) {
            if (!make_parents) throw Error("cannot create '" + normal + "': '" + cur + "' does not exist");
            top()[cur] = Slot{false, Entry::directory(0755, m_default_mtime)};
        } else if (!e->is_dir()) {
            throw Error("cannot create '" + normal + "': '" + cur + "' is a " + std::string(type_name(e->type)) +
                        ", not a directory");
        }
    }
    return dir == "/" ? "/" + std::string(path::name(normal)) : dir + "/" + std::string(path::name(normal));
}

void Tree::erase_one(const std::string& p) {
    if (in_lower(p))
        top()[p] = Slot{true, {}};
    else
        top().erase(p);
}

void Tree::detach_hardlinks(const std::string& p) {
    const Entry* e = get(p);
    if (!e || !e->hardlinked) return;
    // The first remaining link in walk order takes over the content; the others point at it.
    std::vector<std::string> links;
    walk([&](const std::string& q, const Entry& x) {
        if (x.type == FileType::Hardlink && x.link == p) links.push_back(q);
    });
    if (links.empty()) return;
    Entry holder = *e;
    holder.hardlinked = links.size() > 1;
    top()[links[0]] = Slot{false, holder};
    for (size_t i = 1; i < links.size(); ++i) edit(links[i])->link = links[0];
}

std::string Tree::put(std::string_view p, Entry entry, bool make_parents) {
    std::string at = resolve_parent(p, make_parents);
    if (at == "/") {
        if (!entry.is_dir()) throw Error("cannot replace the root directory with a " + std::string(type_name(entry.type)));
        top()["/"] = Slot{false, std::move(entry)};
        return at;
    }
    if (entry.type == FileType::Hardlink) {
        const Entry* target = get(entry.link);
        if (!target || target->is_dir() || target->type == FileType::Hardlink || target->type == FileType::Symlink)
            throw Error("cannot link '" + at + "' to '" + entry.link + "': not a file");
    }
    if (const Entry* old = get(at)) {
        if (old->is_dir() && !entry.is_dir()) remove(at);
        else if (!old->is_dir()) detach_hardlinks(at);
    }
    if (entry.type == FileType::Hardlink) edit(entry.link)->hardlinked = true;
    top()[at] = Slot{false, std::move(entry)};
    return at;
}

std::string Tree::mkdirs(std::string_view p, const Entry& tmpl) {
    std::string cur = "/";
    std::string normal = path::normalise(p);
    for (auto comp : path::split(normal)) {
        cur = resolve(cur == "/" ? "/" + std::string(comp) : cur + "/" + std::string(comp), true);
        const Entry* e = get(cur);
        if (!e) put(cur, tmpl, false);
        else if (!e->is_dir())
            throw Error("cannot create directory '" + std::string(p) + "': '" + cur + "' is a " +
                        std::string(type_name(e->type)));
    }
    return cur;
}

std::string Tree::link(std::string_view p, std::string_view target) {
    std::string stored = resolve(target, false);
    const Entry* t = get(stored);
    if (t && t->type == FileType::Hardlink) stored = t->link;
    Entry e;
    e.type = FileType::Hardlink;
    e.link = stored;
    if (const Entry* te = get(stored)) {
        e.uid = te->uid;
        e.gid = te->gid;
        e.perm = te->perm;
        e.mtime = te->mtime;
    }
    return put(p, std::move(e));
}

std::string Tree::write_file(std::string_view p, std::string data, uint32_t perm) {
    std::string at = resolve(p, true);
    const Entry* old = get(at);
    Entry e = Entry::file(make_blob(std::move(data)), perm, m_default_mtime);
    if (old && old->type == FileType::Hardlink) old = get(old->link);
    if (old && old->type == FileType::Regular) {
        e.uid = old->uid;
        e.gid = old->gid;
        e.perm = old->perm;
        e.xattrs = old->xattrs;
    } else if (old && old->is_dir()) {
        throw Error("cannot write '" + std::string(p) + "': it is a directory");
    }
    return put(at, std::move(e));
}

bool Tree::remove(std::string_view p) {
    std::string normal = path::normalise(p);
    if (normal == "/") throw Error("cannot remove the root directory");
    std::string at = resolve(path::parent(normal), true);
    at = at == "/" ? "/" + std::string(path::name(normal)) : at + "/" + std::string(path::name(normal));
    const Entry* e = get(at);
    if (!e) return false;
    if (e->is_dir()) {
        std::vector<std::string> below;
        walk_under(at, [&](const std::string& q, const Entry&) { below.push_back(q); });
        // Hardlinks from outside the removed subtree keep the content of files inside it.
        for (auto it = below.rbegin(); it != below.rend(); ++it) {
            detach_hardlinks(*it);
            erase_one(*it);
        }
        return true;
    }
    detach_hardlinks(at);
    erase_one(at);
    return true;
}

Entry* Tree::edit(std::string_view stored_path) {
    Map& mine = top();
    if (auto it = mine.find(stored_path); it != mine.end()) return it->second.whiteout ? nullptr : &it->second.entry;
    const Entry* e = get(stored_path);
    if (!e) return nullptr;
    Slot& s = mine[std::string(stored_path)];
    s = Slot{false, *e};
    return &s.entry;
}

} // namespace ib
