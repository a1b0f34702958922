#include "core/recipe.hpp"

#include "core/template.hpp"
#include "core/validate.hpp"
#include "ext/yaml.hpp"

#include <filesystem>
#include <functional>
#include <set>

namespace ib {

namespace fs = std::filesystem;

namespace {

// Loads one file and merges it over what it extends.
Doc load_merged(const std::string& file, const Mark& from, std::vector<std::string>& chain, Diagnostics& diag) {
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(file, ec).string();
    for (const auto& seen : chain) {
        if (seen == canonical) {
            diag.error(from, "recipe '" + file + "' extends itself (through " + std::to_string(chain.size()) +
                                 " file(s))");
            return Doc::null(from);
        }
    }
    Doc doc = yaml::parse_file(file, diag, from);
    if (doc.is_null()) {
        if (!diag.has_errors()) diag.error(doc.mark(), "recipe is empty");
        return doc;
    }
    if (!doc.is_map()) {
        diag.error(doc.mark(), "recipe must be a map of keys (base, steps, outputs, ...), found " + doc.kind_name());
        return Doc::null(doc.mark());
    }
    const Doc* extends = doc.find("extends");
    if (!extends || extends->is_null()) return doc;
    if (!extends->is_scalar()) {
        diag.error(extends->mark(), "recipe: 'extends' must be a path to another recipe");
        return doc;
    }
    chain.push_back(canonical);
    Doc parent = load_merged(host_path(extends->mark(), extends->str()), extends->mark(), chain, diag);
    chain.pop_back();
    if (!parent.is_map()) return doc;

    Doc merged = parent;
    if (Doc* e = merged.find("extends")) *e = Doc::null(e->mark()); // consumed
    for (const auto& item : doc.entries()) {
        if (item.key == "extends") continue;
        Doc* mine = merged.find(item.key);
        if (mine && item.key == "steps" && mine->is_seq() && item.value.is_seq()) {
            for (const auto& step : item.value.items()) mine->items().push_back(step);
        } else if (mine && item.key == "vars" && mine->is_map() && item.value.is_map()) {
            for (const auto& v : item.value.entries()) mine->set(v.key, v.value, v.key_mark);
        } else {
            merged.set(item.key, item.value, item.key_mark);
        }
    }
    return merged;
}

// Renders vars that use other vars, in any order, refusing cycles.
std::map<std::string, std::string> resolve_vars(const std::map<std::string, std::pair<std::string, Mark>>& raw,
                                                Diagnostics& diag) {
    std::map<std::string, std::string> done;
    std::set<std::string> busy, failed;
    // A chain of vars each using the next is resolved by recursion: bounded, so that 100k of them
    // are an error rather than a stack overflow.
    constexpr size_t k_max_depth = 1000;
    std::function<bool(const std::string&)> resolve_one = [&](const std::string& key) -> bool {
        if (done.count(key)) return true;
        if (failed.count(key)) return false; // reported once; tried again, long chains went quadratic
        auto it = raw.find(key);
        if (busy.count(key)) {
            diag.error(it->second.second, "vars: '" + key + "' refers to itself through other vars");
            return false;
        }
        if (busy.size() >= k_max_depth) {
            diag.error(it->second.second, "vars: '" + key + "' is reached through a chain of more than " +
                                              std::to_string(k_max_depth) + " vars using vars");
            return false;
        }
        busy.insert(key);
        // Render with the vars it names resolved first.
        std::vector<std::string> names;
        const std::string& text = it->second.first;
        // On from the end of each "{{...}}", as render() reads them: from the next "{{" instead, a
        // text of many "{{" and one "}}" took quadratic time.
        for (size_t pos = text.find("{{"), end = 0; pos != std::string::npos; pos = text.find("{{", end + 2)) {
            end = text.find("}}", pos + 2);
            if (end == std::string::npos) break;
            std::string inner = text.substr(pos + 2, end - pos - 2);
            inner.erase(0, inner.find_first_not_of(" \t"));
            inner.erase(inner.find_last_not_of(" \t") + 1);
            if (raw.count(inner) && !done.count(inner)) names.push_back(inner);
        }
        bool ok = true;
        for (const auto& n : names) ok = resolve_one(n) && ok;
        busy.erase(key);
        if (!ok) {
            failed.insert(key);
            return false;
        }
        Scope scope{&done, nullptr, "vars are shared by all nodes and cannot use node fields"};
        auto value = render(text, scope, diag, it->second.second);
        if (!value) {
            failed.insert(key);
            return false;
        }
        done[key] = *value;
        return true;
    };
    for (const auto& [key, value] : raw) resolve_one(key);
    return done;
}

void load_nodes(const Doc& list, const std::map<std::string, std::string>& vars, Recipe& r, Diagnostics& diag) {
    if (!list.is_seq()) {
        diag.error(list.mark(), "recipe: 'nodes' must be a list of nodes, found " + list.kind_name());
        return;
    }
    std::map<std::string, std::string> seen; // "mac b8:.." -> node name
    Scope scope{&vars, nullptr, "node fields cannot use other node fields"};
    r.nodes_written = list.items().size();
    for (const auto& item : list.items()) {
        std::string what = "node " + std::to_string(r.nodes.size() + 1);
        if (const Doc* n = item.is_map() ? item.find("name") : nullptr; n && n->is_scalar())
            what = "node '" + validate::shown(n->str()) + "'";
        Doc rendered = render(item, scope, diag);
        size_t errors_before = diag.error_count();
        MapReader m(rendered, diag, what);
        if (!m.valid()) continue;
        NodeSpec node;
        node.mark = item.mark();
        auto check = [&](const std::string& key, auto validator, bool normalise_mac) {
            auto value = m.string(key, key == "name");
            if (!value) return;
            const Doc* d = rendered.find(key);
            if (auto why = validator(*value)) {
                diag.error(d->mark(), what + ": " + key + " '" + validate::shown(*value) + "' " + *why);
                return;
            }
            std::string v = normalise_mac ? validate::normalise_mac(*value) : *value;
            if (key == "serial")
                for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string ip_key = key == "ip" ? v.substr(0, v.find('/')) : v;
            if (auto [it, fresh] = seen.emplace(key + " " + ip_key, node.name.empty() ? v : node.name); !fresh)
                diag.error(d->mark(), what + ": " + key + " '" + *value + "' is already used by node '" +
                                          it->second + "'");
            node.fields[key] = v;
        };
        check("name", [](const std::string& s) { return validate::hostname(s); }, false);
        node.name = node.fields.count("name") ? node.fields["name"] : std::string();
        check("mac", [](const std::string& s) { return validate::mac(s); }, true);
        check("serial", [](const std::string& s) { return validate::serial(s); }, false);
        check("ip", [](const std::string& s) { return validate::ipv4(s, true); }, false);
        if (const Doc* v = m.get("vars")) {
            if (!v->is_map()) {
                diag.error(v->mark(), what + ": 'vars' must be a map of strings, found " + v->kind_name());
            } else {
                for (const auto& e : v->entries()) {
                    if (node.fields.count(e.key) || e.key == "name") {
                        diag.error(e.key_mark, what + ": var '" + e.key + "' hides the node field of that name");
                        continue;
                    }
                    if (auto s = doc_string(e.value, diag, what + ": var '" + e.key + "'")) node.fields[e.key] = *s;
                }
            }
        }
        m.finish();
        // A node with errors is left out, so that its missing fields cause no second round of errors.
        if (diag.error_count() == errors_before) r.nodes.push_back(std::move(node));
    }
}

} // namespace

std::string folder_of(const Mark& mark) {
    if (!mark.file) return ".";
    fs::path p(*mark.file);
    return p.has_parent_path() ? p.parent_path().string() : ".";
}

std::string host_path(const Mark& mark, const std::string& p) {
    if (!p.empty() && p[0] == '/') return fs::path(p).lexically_normal().string();
    return (fs::path(folder_of(mark)) / p).lexically_normal().string();
}

Recipe load_recipe(const std::string& file, const Overrides& overrides, Diagnostics& diag) {
    Recipe r;
    r.file = file;
    std::vector<std::string> chain;
    Doc doc = load_merged(file, Mark{}, chain, diag);
    if (!doc.is_map()) return r;

    MapReader top(doc, diag, "recipe");
    r.name = top.string("name").value_or(fs::path(file).stem().string());
    // The name is written into files (dnsmasq.conf's header, the manifest): one line.
    if (const Doc* n = doc.find("name"); n && n->is_scalar()) {
        if (auto why = validate::one_line(r.name))
            diag.error(n->mark(), "recipe: name '" + validate::shown(r.name) + "' " + *why);
    }
    top.get("extends");
    if (const Doc* e = top.get("epoch")) {
        if (auto v = doc_uint(*e, diag, "recipe: 'epoch'")) {
            if (*v > static_cast<uint64_t>(validate::k_max_epoch))
                diag.error(e->mark(), "recipe: epoch " + std::to_string(*v) + " is after " +
                                          std::to_string(validate::k_max_epoch) +
                                          " (2106-02-07), the latest time every output can store");
            else
                r.epoch = static_cast<int64_t>(*v);
        }
    }

    // vars: recipe values, then --set overrides (which may add new names).
    std::map<std::string, std::pair<std::string, Mark>> raw;
    if (const Doc* vars = top.get("vars")) {
        if (!vars->is_map()) {
            diag.error(vars->mark(), "recipe: 'vars' must be a map of names to strings, found " + vars->kind_name());
        } else {
            for (const auto& e : vars->entries()) {
                if (auto why = validate::var_name(e.key)) {
                    diag.error(e.key_mark,
                               "vars: '" + validate::shown(e.key) + "' is not a variable name: it " + *why);
                    continue;
                }
                if (auto s = doc_string(e.value, diag, "var '" + e.key + "'")) raw[e.key] = {*s, e.value.mark()};
            }
        }
    }
    auto cli = std::make_shared<const std::string>("--set");
    for (const auto& [k, v] : overrides) raw[k] = {v, Mark{cli, 1, 1}};
    r.vars = resolve_vars(raw, diag);

    if (const Doc* base = top.required("base")) r.base = *base;
    if (const Doc* nodes = top.get("nodes")) load_nodes(*nodes, r.vars, r, diag);
    auto list_of = [&](const char* key, std::vector<Doc>& out, bool required) {
        const Doc* d = required ? top.required(key) : top.get(key);
        if (!d) return;
        if (!d->is_seq()) {
            diag.error(d->mark(), std::string("recipe: '") + key + "' must be a list, found " + d->kind_name());
            return;
        }
        out = d->items();
    };
    list_of("steps", r.steps, false);
    list_of("outputs", r.outputs, true);
    top.finish();
    return r;
}

} // namespace ib
