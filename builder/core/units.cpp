#include "core/units.hpp"

#include "core/error.hpp"

#include <sstream>

namespace ib::units {

namespace {

const char* const k_search[] = {"/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
                                "/lib/systemd/system"};
const char* const k_etc = "/etc/systemd/system";

// "foo@bar.service" -> "foo@.service"; anything else unchanged.
std::string template_of(const std::string& unit) {
    size_t at = unit.find('@');
    size_t dot = unit.rfind('.');
    if (at == std::string::npos || dot == std::string::npos || dot < at) return unit;
    return unit.substr(0, at + 1) + unit.substr(dot);
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string w;
    while (in >> w) out.push_back(w);
    return out;
}

// The unit file to read, following a link in /etc/systemd/system (an enabled alias or a linked unit).
std::optional<std::string> unit_file(const Tree& tree, const std::string& unit) {
    for (const std::string& name : {unit, template_of(unit)}) {
        for (const char* dir : k_search) {
            std::string p = std::string(dir) + "/" + name;
            const Entry* e = tree.find(p);
            if (e && e->type == FileType::Regular) return tree.resolve(p);
        }
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> find(const Tree& tree, const std::string& unit) {
    for (const std::string& name : {unit, template_of(unit)}) {
        for (const char* dir : k_search) {
            std::string p = std::string(dir) + "/" + name;
            const Entry* e = tree.find(p);
            // A link to /dev/null is a mask, not a unit.
            if (e && e->type == FileType::Regular) return p;
        }
    }
    return std::nullopt;
}

Install read_install(const std::string& text) {
    Install out;
    std::stringstream in(text);
    std::string line;
    bool install = false;
    while (std::getline(in, line)) {
        size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#' || line[start] == ';') continue;
        line = line.substr(start);
        if (line[0] == '[') {
            install = line.rfind("[Install]", 0) == 0;
            continue;
        }
        if (!install) continue;
        size_t eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string key = line.substr(0, eq), value = line.substr(eq + 1);
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
        auto add = [&](std::vector<std::string>& list) {
            for (auto& w : words(value)) list.push_back(w);
        };
        if (key == "WantedBy") add(out.wanted_by);
        else if (key == "RequiredBy") add(out.required_by);
        else if (key == "Alias") add(out.alias);
        else if (key == "Also") add(out.also);
        else if (key == "DefaultInstance") out.default_instance = words(value).empty() ? "" : words(value)[0];
    }
    return out;
}

void enable(Tree& tree, const std::string& unit) {
    auto path = find(tree, unit);
    if (!path) throw Error("systemd unit '" + unit + "' is not in the image");
    auto file = unit_file(tree, unit);
    Install install = read_install(tree.read_file(*file));
    std::string name = unit;
    if (name == template_of(name) && name.find('@') != std::string::npos) {
        if (install.default_instance.empty())
            throw Error("systemd unit '" + unit + "' is a template; name an instance such as '" +
                        name.substr(0, name.find('@') + 1) + "x" + name.substr(name.find('@') + 1) + "'");
        name = name.substr(0, name.find('@') + 1) + install.default_instance + name.substr(name.find('@') + 1);
    }
    Entry dir = Entry::directory(0755, tree.default_mtime());
    auto link_in = [&](const std::string& target, const char* suffix) {
        std::string folder = std::string(k_etc) + "/" + target + suffix;
        tree.mkdirs(folder, dir);
        tree.put(folder + "/" + name, Entry::symlink(*path, tree.default_mtime()));
    };
    for (const auto& t : install.wanted_by) link_in(t, ".wants");
    for (const auto& t : install.required_by) link_in(t, ".requires");
    for (const auto& a : install.alias) {
        tree.mkdirs(k_etc, dir);
        tree.put(std::string(k_etc) + "/" + a, Entry::symlink(*path, tree.default_mtime()));
    }
    for (const auto& also : install.also)
        if (also != unit) enable(tree, also);
    if (install.wanted_by.empty() && install.required_by.empty() && install.alias.empty() && install.also.empty())
        throw Error("systemd unit '" + unit + "' has no [Install] section: it is static and cannot be enabled");
}

void disable(Tree& tree, const std::string& unit) {
    std::vector<std::string> doomed;
    std::optional<Install> install;
    if (auto file = unit_file(tree, unit)) install = read_install(tree.read_file(*file));
    const Entry* etc = tree.get(k_etc);
    if (!etc || !etc->is_dir()) return;
    tree.walk_under(k_etc, [&](const std::string& p, const Entry& e) {
        if (e.type != FileType::Symlink) return;
        std::string parent = path::parent(p);
        bool in_wants = parent.size() > 6 && (parent.ends_with(".wants") || parent.ends_with(".requires"));
        std::string name(path::name(p));
        if (in_wants && (name == unit || template_of(name) == unit)) doomed.push_back(p);
        if (install && parent == k_etc)
            for (const auto& a : install->alias)
                if (name == a) doomed.push_back(p);
    });
    for (const auto& p : doomed) tree.remove(p);
}

void mask(Tree& tree, const std::string& unit) {
    disable(tree, unit);
    tree.mkdirs(k_etc, Entry::directory(0755, tree.default_mtime()));
    tree.put(std::string(k_etc) + "/" + unit, Entry::symlink("/dev/null", tree.default_mtime()));
}

bool unmask(Tree& tree, const std::string& unit) {
    if (!is_masked(tree, unit)) return false;
    tree.remove(std::string(k_etc) + "/" + unit);
    return true;
}

bool is_masked(const Tree& tree, const std::string& unit) {
    const Entry* e = tree.find(std::string(k_etc) + "/" + unit, false);
    return e && e->type == FileType::Symlink && e->link == "/dev/null";
}

bool is_enabled(const Tree& tree, const std::string& unit) {
    bool found = false;
    if (!tree.get(k_etc)) return false;
    tree.walk_under(k_etc, [&](const std::string& p, const Entry& e) {
        std::string parent = path::parent(p);
        if (e.type == FileType::Symlink && path::name(p) == unit &&
            (parent.ends_with(".wants") || parent.ends_with(".requires")))
            found = true;
    });
    return found;
}

} // namespace ib::units
