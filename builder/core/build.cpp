#include "core/build.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/owned.hpp"
#include "core/path.hpp"
#include "core/staging.hpp"
#include "core/template.hpp"
#include "core/validate.hpp"

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sys/stat.h>

namespace ib {

namespace {

namespace fs = std::filesystem;

constexpr const char* k_checksums_name = "SHA256SUMS";

// The one key of a {TYPE: OPTIONS} list item, with its options; nullopt after reporting.
struct Typed {
    std::string type;
    Mark type_mark;
    const Doc* options;
};
std::optional<Typed> typed_item(const Doc& item, const char* list, Diagnostics& diag) {
    if (item.is_map() && item.entries().size() == 1) {
        const auto& e = item.entries().front();
        return Typed{e.key, e.key_mark, &e.value};
    }
    if (item.is_scalar()) return Typed{item.str(), item.mark(), nullptr};
    diag.error(item.mark(), std::string(list) + ": each item is a map with one key, the type, such as '- " +
                                (std::string(list) == "steps" ? "hostname: worker-1" : "tar: {path: rootfs.tar}") + "'");
    return std::nullopt;
}

template <typename TypeList>
std::vector<std::string> type_names(const TypeList& types) {
    std::vector<std::string> out;
    for (const auto& t : types) out.emplace_back(t.name);
    return out;
}

// " (did you mean 'x'?)" when a name is close, else the whole list to choose from.
std::string suggestion(const std::string& word, const std::vector<std::string>& names) {
    std::string close = did_you_mean(word, names);
    if (!close.empty()) return close;
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return "; known types: " + s;
}

bool always_per_node(const StepType*) { return false; }
bool always_per_node(const OutputType* type) { return type->always_per_node; }

// Parses `item` once for all nodes or once per node; `Parse` is the type's parse function.
template <typename Planned, typename Type, typename Env, typename Parse>
void plan_item(const Typed& t, const Type* type, const Recipe& r, Diagnostics& diag, Planned& planned, Parse parse,
               const char* kind) {
    planned.type = type;
    planned.what = std::string(kind) + " '" + t.type + "'";
    planned.mark = t.type_mark;
    Doc options = t.options ? *t.options : Doc::null(t.type_mark);
    planned.per_node = uses_node(options) || always_per_node(type);
    Scope scope{&r.vars, nullptr, "the recipe lists no nodes"};
    const NodeSpec* node_spec = nullptr; // the node being parsed for, per node
    // Options whose templates failed are not parsed: their errors would only echo the template's.
    auto parse_rendered = [&]() -> decltype(parse(options, std::declval<Env&>())) {
        size_t before = diag.error_count();
        Doc rendered = render(options, scope, diag);
        if (diag.error_count() != before) return nullptr;
        Env env{diag, planned.what, t.type_mark};
        if constexpr (requires { env.node; }) env.node = node_spec;
        return parse(rendered, env);
    };
    if (!planned.per_node) {
        planned.shared = parse_rendered();
        return;
    }
    if (r.nodes.empty()) {
        if (r.nodes_written == 0) {
            if (!uses_node(options))
                diag.error(t.type_mark, planned.what + " is written once per node, but the recipe lists no nodes");
            render(options, scope, diag); // reports the {{node.*}} that has no node
        }
        return;
    }
    for (const auto& node : r.nodes) {
        scope.node = &node.fields;
        node_spec = &node;
        planned.nodes.push_back(parse_rendered());
    }
}

// Every path an output writes, with the output instance that writes it: no two instances may write the
// same path, or one inside the other (a tarball inside a folder output, whose rename into place would
// carry it along or lose it; SHA256SUMS would list one of them wrongly).
struct AreaOwner {
    Mark mark;
    std::string what;
    size_t instance;
};
using Areas = std::map<std::string, AreaOwner>;

void claim_areas(Areas& areas, const Output& o, const PlannedOutput& po, size_t instance, Diagnostics& diag) {
    for (const auto& a : o.areas()) {
        for (const char* reserved : {k_checksums_name, owned::k_file})
            if (path::is_within("/" + a, std::string("/") + reserved)) {
                diag.error(po.mark, po.what + ": path '" + a + "' is where imgbuild keeps its own '" + reserved +
                                        "' in the output folder; choose another path");
                return;
            }
        auto clash = [&](const std::string& other, const AreaOwner& owner, const char* how) {
            if (owner.instance == instance) return false;
            if (other == a)
                diag.error(po.mark, po.what + ": path '" + a + "' is already written by the output at " + owner.mark.str() +
                                        (po.per_node ? " (give each node its own path with {{node.name}})" : ""));
            else
                diag.error(po.mark, po.what + ": path '" + a + "' " + how + " '" + other + "', which the output at " +
                                        owner.mark.str() + " writes; outputs may not lie inside one another: give each its own path");
            return true;
        };
        bool clashed = false;
        // An output already claimed at `a` or one of its parents ...
        std::string prefix, abs = "/" + a; // split() gives views into it
        for (auto part : path::split(abs)) {
            prefix += (prefix.empty() ? "" : "/") + std::string(part);
            if (auto it = areas.find(prefix); it != areas.end() && clash(it->first, it->second, "lies inside"))
                clashed = true;
            if (clashed) break;
        }
        // ... or below it.
        if (!clashed)
            for (auto it = areas.lower_bound(a + "/"); it != areas.end() && it->first.starts_with(a + "/"); ++it)
                if (clash(it->first, it->second, "holds")) break;
        areas.emplace(a, AreaOwner{po.mark, po.what, instance});
    }
}

std::string kind_of(const struct stat& st) {
    if (S_ISDIR(st.st_mode)) return "a folder";
    if (S_ISREG(st.st_mode)) return "a file";
    if (S_ISLNK(st.st_mode)) return "a symlink";
    return "a special file";
}

// What the outputs would replace in the output folder: each must be absent, or what the same type of
// output put there in an earlier build (owned.hpp); never a folder of the user's. And the output folder
// may not be inside a folder the base is read from, nor hold it: every build would read the previous
// build's outputs into the next image.
void check_out_dir(const Plan& plan, const OutputChecks& checks, Diagnostics& diag) {
    const std::string& out = checks.out_dir;
    if (plan.base && !plan.base->folder().empty()) {
        std::error_code ec1, ec2;
        std::string base = fs::weakly_canonical(plan.base->folder(), ec1).string();
        std::string where = fs::weakly_canonical(fs::absolute(out), ec2).string();
        if (!ec1 && !ec2 && (path::is_within(where, base) || path::is_within(base, where))) {
            const Doc* dir = plan.recipe.base.find("dir");
            diag.error(dir ? dir->mark() : plan.recipe.base.mark(),
                       "base: the output folder '" + out + "' (--out) " +
                           (where == base                    ? "is the base folder itself"
                            : path::is_within(where, base) ? "is inside the base folder '" + plan.base->folder() + "'"
                                                           : "holds the base folder '" + plan.base->folder() + "'") +
                           ": every build would read the earlier outputs into the image; build into a folder outside the base");
        }
    }
    struct stat st {};
    if (::stat(out.c_str(), &st) != 0) return; // made by the build
    if (!S_ISDIR(st.st_mode)) {
        diag.error({}, "output folder '" + out + "' exists and is not a folder");
        return;
    }
    std::string problem;
    std::vector<owned::Entry> record = owned::read(out, &problem);
    if (!problem.empty() && !checks.force) diag.warning({}, problem + "; nothing in the output folder is taken for imgbuild's");
    std::set<std::string> seen;
    auto check = [&](const Mark& mark, const std::string& what, const std::string& type, const OutputTarget& t) {
        if (!seen.insert(t.path).second) return;
        std::string rel, abs = "/" + t.path; // split() gives views into it
        for (auto part : path::split(abs)) {
            rel += (rel.empty() ? "" : "/") + std::string(part);
            std::string host = out + "/" + rel;
            struct stat now {};
            if (::lstat(host.c_str(), &now) != 0) return; // absent: written whole
            if (rel != t.path) {
                if (S_ISDIR(now.st_mode)) continue;
                diag.error(mark, what + ": '" + host + "' is " + kind_of(now) + ", but '" + out + "/" + t.path +
                                     "' is to be written inside it" + (S_ISLNK(now.st_mode) ? " (imgbuild does not write through a symlink)" : ""));
                return;
            }
            if (checks.force || owned::find_match(record, t.path, type, host)) return;
            bool sums = type == owned::k_checksums_type;
            diag.error(mark, what + ": '" + host + "' exists (" + kind_of(now) + ") and was not written there by " +
                                 (sums ? "imgbuild" : "this output") + " in an earlier build; imgbuild " +
                                 (t.dir ? "replaces or updates" : "replaces") + " only what it wrote: move it away, or pass --force to replace it");
        }
    };
    for (const auto& po : plan.outputs) {
        if (po.shared)
            for (const auto& t : po.shared->targets(nullptr)) check(po.mark, po.what, std::string(po.type->name), t);
        for (size_t n = 0; n < po.nodes.size(); ++n)
            if (po.nodes[n])
                for (const auto& t : po.nodes[n]->targets(&plan.recipe.nodes[n])) check(po.mark, po.what, std::string(po.type->name), t);
    }
    check({}, "output folder", owned::k_checksums_type, {k_checksums_name, false});
}

Timestamp choose_epoch(const Recipe& r, std::string& source, Diagnostics& diag) {
    if (const char* env = std::getenv("SOURCE_DATE_EPOCH"); env && *env) {
        std::string_view text(env);
        int64_t v = -1;
        bool digits = text.size() <= 19 && text.find_first_not_of("0123456789") == std::string_view::npos;
        if (digits) std::from_chars(text.data(), text.data() + text.size(), v);
        if (digits && v >= 0 && v <= validate::k_max_epoch) {
            source = "SOURCE_DATE_EPOCH";
            return {v, 0};
        }
        if (digits)
            diag.error({}, "SOURCE_DATE_EPOCH=" + std::string(env) + " is after " +
                               std::to_string(validate::k_max_epoch) +
                               " (2106-02-07), the latest time every output can store");
        else
            diag.error({}, "SOURCE_DATE_EPOCH='" + validate::shown(env) + "' is not a number of seconds");
    }
    if (r.epoch) {
        source = "recipe epoch";
        return {*r.epoch, 0};
    }
    source = "clock";
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return {std::chrono::duration_cast<std::chrono::seconds>(now).count(), 0};
}

} // namespace

Plan make_plan(const std::string& recipe_file, const Overrides& overrides, const SourceOptions& source_options,
               const OutputChecks* checks) {
    Diagnostics diag;
    Plan plan;
    plan.recipe = load_recipe(recipe_file, overrides, diag);
    const Recipe& r = plan.recipe;
    plan.now = choose_epoch(r, plan.epoch_source, diag);

    if (!r.base.is_null()) {
        Scope scope{&r.vars, nullptr, "the base is shared by all nodes"};
        plan.base = parse_base(render(r.base, scope, diag), diag, source_options);
    }

    bool prefix = true;
    for (const auto& item : r.steps) {
        auto t = typed_item(item, "steps", diag);
        if (!t) continue;
        const StepType* type = find_step_type(t->type);
        if (!type) {
            diag.error(t->type_mark, "unknown step type '" + t->type + "'" + suggestion(t->type, type_names(step_types())));
            continue;
        }
        PlannedStep ps;
        plan_item<PlannedStep, StepType, StepParseEnv>(*t, type, r, diag, ps, type->parse, "step");
        if (ps.per_node) prefix = false;
        if (prefix) ++plan.shared_prefix;
        plan.steps.push_back(std::move(ps));
    }

    Areas areas;
    size_t instance = 0;
    for (const auto& item : r.outputs) {
        auto t = typed_item(item, "outputs", diag);
        if (!t) continue;
        const OutputType* type = find_output_type(t->type);
        if (!type) {
            diag.error(t->type_mark, "unknown output type '" + t->type + "'" + suggestion(t->type, type_names(output_types())));
            continue;
        }
        PlannedOutput po;
        plan_item<PlannedOutput, OutputType, OutputParseEnv>(*t, type, r, diag, po, type->parse, "output");
        auto claim = [&](const std::unique_ptr<Output>& o) {
            if (o) claim_areas(areas, *o, po, instance++, diag);
        };
        claim(po.shared);
        // An always-per-node output names its per-node folders itself: its instances share one path.
        for (const auto& o : po.nodes)
            if (!type->always_per_node || &o == &po.nodes.front()) claim(o);
        plan.outputs.push_back(std::move(po));
    }
    if (r.outputs.empty() && !r.base.is_null() && !diag.has_errors())
        diag.error({}, r.file + ": recipe: 'outputs' is empty: nothing would be built");

    if (checks && !diag.has_errors()) check_out_dir(plan, *checks, diag);

    diag.checkpoint();
    plan.warnings = diag.warnings();
    return plan;
}

std::string describe(const Plan& plan, const std::string& out_dir) {
    const Recipe& r = plan.recipe;
    std::string s = "recipe " + r.file + " ('" + r.name + "')\n";
    s += "base: " + (plan.base ? plan.base->describe() : std::string("?")) + "\n";
    s += "time: " + std::to_string(plan.now.sec) + " (" + plan.epoch_source + ")\n";
    s += "nodes: " + std::to_string(r.nodes.size()) + "\n";
    for (const auto& n : r.nodes) {
        s += "  " + n.name;
        for (const char* k : {"mac", "serial", "ip"})
            if (auto it = n.fields.find(k); it != n.fields.end()) s += "  " + std::string(k) + "=" + it->second;
        s += "\n";
    }
    s += "steps:\n";
    for (size_t i = 0; i < plan.steps.size(); ++i) {
        const auto& ps = plan.steps[i];
        std::string layer = i < plan.shared_prefix ? "recipe layer" : ps.per_node ? "node layer" : "node layer, same for every node";
        s += "  " + std::to_string(i + 1) + ". " + std::string(ps.type->name) + " [" + layer + "] at " + ps.mark.str() + "\n";
        if (ps.per_node) {
            for (size_t n = 0; n < ps.nodes.size(); ++n)
                s += "       " + r.nodes[n].name + ": " + ps.nodes[n]->describe() + "\n";
        } else {
            s += "       " + ps.shared->describe() + "\n";
        }
    }
    s += "outputs (in " + out_dir + "/):\n";
    for (const auto& po : plan.outputs) {
        if (po.per_node) {
            for (size_t n = 0; n < po.nodes.size(); ++n)
                s += "  " + po.nodes[n]->describe() + "  [node " + r.nodes[n].name + "]\n";
        } else {
            bool skips = plan.shared_prefix < plan.steps.size();
            s += "  " + po.shared->describe() + (skips ? "  [shared: steps that use {{node.*}} are not in it]" : "") + "\n";
        }
    }
    return s;
}

namespace {

void apply_step(const PlannedStep& ps, const Step& step, Tree& tree, const StepApplyEnv& env, const std::string& node) {
    log::detail("  " + std::string(ps.type->name) + (node.empty() ? "" : " [" + node + "]") + ": " + step.describe());
    try {
        step.apply(tree, env);
    } catch (const Error& e) {
        throw Error(ps.mark.str() + ": " + ps.what + (node.empty() ? "" : " (node '" + node + "')") + ": " + e.what(),
                    e.exit_code());
    }
}

std::string layer_summary(const Tree& tree) {
    std::string s;
    for (const auto& l : tree.layers())
        s += (s.empty() ? "" : ", ") + l.name + " " + std::to_string(l.entries) + " entries" +
             (l.whiteouts ? " + " + std::to_string(l.whiteouts) + " whiteouts" : "");
    return s;
}

// What the output folder's record (owned.hpp) says once this build is in place: every path its
// outputs write (what a staged one is now, it stays through the rename), and of the earlier record
// what is still there as it was and does not overlap another type of output of this build (the
// folders of a netboot node that left the recipe, an output the recipe no longer has).
std::vector<owned::Entry> ownership(const Plan& plan, const Staging& staging) {
    std::vector<owned::Entry> entries;
    std::set<std::string> paths;
    std::vector<std::pair<std::string, std::string>> areas; // path, output type
    auto add = [&](const std::string& type, const OutputTarget& t) {
        if (!paths.insert(t.path).second) return;
        if (auto e = owned::describe(type, t.path, staging.current(t.path)); e && e->dir == t.dir) entries.push_back(*e);
    };
    for (const auto& po : plan.outputs) {
        auto instance = [&](const Output& o, const NodeSpec* node) {
            for (const auto& a : o.areas()) areas.emplace_back(a, po.type->name);
            for (const auto& t : o.targets(node)) add(std::string(po.type->name), t);
        };
        if (po.shared) instance(*po.shared, nullptr);
        for (size_t n = 0; n < po.nodes.size(); ++n) instance(*po.nodes[n], &plan.recipe.nodes[n]);
    }
    add(owned::k_checksums_type, {k_checksums_name, false});
    for (const auto& old : owned::read(staging.out_dir())) {
        if (paths.count(old.path)) continue;
        bool overlaps = false;
        for (const auto& [a, type] : areas)
            overlaps = overlaps || (type != old.type && (path::is_within("/" + old.path, "/" + a) || path::is_within("/" + a, "/" + old.path)));
        if (!overlaps && owned::find_match({old}, old.path, old.type, staging.out_dir() + "/" + old.path)) entries.push_back(old);
    }
    return entries;
}

void write_output(const Output& out, const Tree& tree, Staging& staging, const OutputWriteEnv& env) {
    out.check(tree);
    auto start = std::chrono::steady_clock::now();
    out.write(tree, staging, env);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char buf[64];
    snprintf(buf, sizeof buf, " (%.2f s)", secs);
    log::info("wrote " + staging.out_dir() + "/" + out.written(env) + buf);
}

} // namespace

void execute(const Plan& plan, const BuildOptions& options) {
    const Recipe& r = plan.recipe;
    StepApplyEnv env{plan.now};
    OutputWriteEnv out_env{options.threads, plan.now, r.name};
    out_env.prune = options.prune;

    // 1. Base layer, from the source.
    log::info("reading base: " + plan.base->describe());
    Tree tree = plan.base->read(plan.now);
    tree.set_default_mtime(plan.now);
    log::detail("base: " + std::to_string(tree.size()) + " entries");

    // 2. Recipe layer: the steps that are the same for every node, up to the first that is not.
    tree.push_layer("recipe");
    for (size_t i = 0; i < plan.shared_prefix; ++i) apply_step(plan.steps[i], *plan.steps[i].shared, tree, env, "");
    log::detail("layers: " + layer_summary(tree));

    Staging staging(options.out_dir);

    // 3. Shared outputs see every step that uses no node field, in recipe order.
    bool any_shared = false, any_per_node = false;
    for (const auto& po : plan.outputs) (po.per_node ? any_per_node : any_shared) = true;
    if (any_shared) {
        Tree shared = tree.fork("shared");
        for (size_t i = plan.shared_prefix; i < plan.steps.size(); ++i)
            if (!plan.steps[i].per_node) apply_step(plan.steps[i], *plan.steps[i].shared, shared, env, "");
        for (const auto& po : plan.outputs)
            if (!po.per_node) write_output(*po.shared, shared, staging, out_env);
    }

    // 4. Node layers: one at a time, each dropped once its outputs are written.
    if (any_per_node) {
        for (size_t n = 0; n < r.nodes.size(); ++n) {
            check_interrupted();
            Tree node = tree.fork("node " + r.nodes[n].name);
            for (size_t i = plan.shared_prefix; i < plan.steps.size(); ++i)
                apply_step(plan.steps[i], plan.steps[i].for_node(n), node, env, r.nodes[n].name);
            log::detail("node " + r.nodes[n].name + ": " + layer_summary(node));
            OutputWriteEnv node_env = out_env;
            node_env.identity = r.name + "/" + r.nodes[n].name;
            node_env.node = &r.nodes[n];
            for (const auto& po : plan.outputs)
                if (po.per_node) write_output(*po.nodes[n], node, staging, node_env);
        }
        for (const auto& po : plan.outputs) {
            if (!po.per_node || po.nodes.empty()) continue;
            NodeOutputs all;
            for (size_t n = 0; n < po.nodes.size(); ++n) all.emplace_back(po.nodes[n].get(), &r.nodes[n]);
            po.nodes.front()->finish(staging, all, out_env);
        }
    }

    // 5. Everything written: checksums of the files and the record of what this build owns, then move
    // it all into place together.
    staging.add_checksums(k_checksums_name);
    staging.add_file(owned::k_file, owned::text(ownership(plan, staging)));
    staging.commit();
}

} // namespace ib
