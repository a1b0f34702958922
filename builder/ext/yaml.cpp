#include "ext/yaml.hpp"

#include "core/host_file.hpp"

#include <yaml-cpp/yaml.h>

#include <memory>
#include <unordered_set>

namespace ib::yaml {

namespace {

Mark mark_of(const std::shared_ptr<const std::string>& file, const YAML::Mark& m) {
    // yaml-cpp counts from 0 and gives -1 for nodes it made up.
    return Mark{file, m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1};
}

// How many nodes a document may become once its aliases are expanded. An alias is a reference to
// an anchored node, and nested ones multiply: a few hundred bytes can stand for 10^9 nodes. A
// document without aliases has fewer nodes than half its bytes, so it never meets this bound.
constexpr size_t k_alias_slack = 1'000'000;

struct Converter {
    std::shared_ptr<const std::string> file;
    Diagnostics& diag;
    size_t limit;
    size_t nodes_left = limit;
    bool exceeded = false;

    Doc convert(const YAML::Node& node) {
        Mark mark = mark_of(file, node.Mark());
        if (exceeded) return Doc::null(mark);
        if (nodes_left == 0) {
            exceeded = true;
            diag.error(mark, "YAML: aliases expand the document past " + std::to_string(limit) +
                                 " nodes (aliases of aliases?)");
            return Doc::null(mark);
        }
        --nodes_left;
        switch (node.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null: return Doc::null(mark);
        case YAML::NodeType::Scalar: return Doc::scalar(node.Scalar(), mark, node.Tag() != "!");
        case YAML::NodeType::Sequence: {
            Doc d = Doc::seq(mark);
            d.items().reserve(node.size());
            for (const auto& item : node) d.items().push_back(convert(item));
            return d;
        }
        case YAML::NodeType::Map: {
            Doc d = Doc::map(mark);
            // Duplicates found through a set: a linear search per key made big maps quadratic.
            std::unordered_set<std::string> seen;
            for (const auto& kv : node) {
                Mark key_mark = mark_of(file, kv.first.Mark());
                if (!kv.first.IsScalar()) {
                    diag.error(key_mark, "map keys must be strings");
                    continue;
                }
                const std::string& key = kv.first.Scalar();
                if (!seen.insert(key).second) {
                    diag.error(key_mark, "duplicate key '" + key + "'");
                    continue;
                }
                d.entries().push_back({key, key_mark, convert(kv.second)});
            }
            return d;
        }
        }
        return Doc::null(mark);
    }
};

} // namespace

Doc parse(const std::string& text, const std::string& file, Diagnostics& diag) {
    auto name = std::make_shared<const std::string>(file);
    try {
        YAML::Node root = YAML::Load(text);
        Converter c{name, diag, text.size() / 2 + k_alias_slack};
        Doc doc = c.convert(root);
        // Only the one error: the half-converted rest would add a wave of bogus ones.
        if (c.exceeded) return Doc::null(Mark{name, 1, 1});
        if (doc.mark().line == 0) doc = doc.is_null() ? Doc::null(Mark{name, 1, 1}) : doc;
        return doc;
    } catch (const YAML::Exception& e) {
        diag.error(mark_of(name, e.mark), "YAML syntax: " + e.msg);
        return Doc::null(Mark{name, 1, 1});
    }
}

Doc parse_file(const std::string& path, Diagnostics& diag, const Mark& from) {
    auto text = host_file::read(path, host_file::k_recipe_max, "recipe");
    if (!text) {
        diag.error(from, text.error());
        return Doc::null(from);
    }
    return parse(text.value(), path, diag);
}

} // namespace ib::yaml
