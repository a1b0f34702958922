#include "core/build.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/staging.hpp"
#include "core/template.hpp"
#include "core/validate.hpp"

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>

namespace ib {

namespace {

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

Plan make_plan(const std::string& recipe_file, const Overrides& overrides, const SourceOptions& source_options) {
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

    std::map<std::string, Mark> targets; // output path -> where it was asked for
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
            if (!o) return;
            if (auto [it, fresh] = targets.emplace(o->path(), po.mark); !fresh)
                diag.error(po.mark, po.what + ": path '" + o->path() + "' is already written by the output at " +
                                        it->second.str() + (po.per_node ? " (give each node its own path with {{node.name}})" : ""));
        };
        claim(po.shared);
        // An always-per-node output names its per-node folders itself: its instances share one path.
        for (const auto& o : po.nodes)
            if (!type->always_per_node || &o == &po.nodes.front()) claim(o);
        plan.outputs.push_back(std::move(po));
    }
    if (r.outputs.empty() && !r.base.is_null() && !diag.has_errors())
        diag.error({}, r.file + ": recipe: 'outputs' is empty: nothing would be built");

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

    // 5. Everything written: checksums of the files, then move it all into place together.
    staging.add_checksums("SHA256SUMS");
    staging.commit();
}

} // namespace ib
