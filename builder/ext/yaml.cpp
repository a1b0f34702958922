#include "ext/yaml.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace ib::yaml {

namespace {

Mark mark_of(const std::shared_ptr<const std::string>& file, const YAML::Mark& m) {
    // yaml-cpp counts from 0 and gives -1 for nodes it made up.
    return Mark{file, m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1};
}

Doc convert(const YAML::Node& node, const std::shared_ptr<const std::string>& file, Diagnostics& diag) {
    Mark mark = mark_of(file, node.Mark());
    switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return Doc::null(mark);
    case YAML::NodeType::Scalar: return Doc::scalar(node.Scalar(), mark, node.Tag() != "!");
    case YAML::NodeType::Sequence: {
        Doc d = Doc::seq(mark);
        for (const auto& item : node) d.items().push_back(convert(item, file, diag));
        return d;
    }
    case YAML::NodeType::Map: {
        Doc d = Doc::map(mark);
        for (const auto& kv : node) {
            Mark key_mark = mark_of(file, kv.first.Mark());
            if (!kv.first.IsScalar()) {
                diag.error(key_mark, "map keys must be strings");
                continue;
            }
            const std::string& key = kv.first.Scalar();
            if (const Doc* first = d.find(key)) {
                (void)first;
                diag.error(key_mark, "duplicate key '" + key + "'");
                continue;
            }
            d.entries().push_back({key, key_mark, convert(kv.second, file, diag)});
        }
        return d;
    }
    }
    return Doc::null(mark);
}

} // namespace

Doc parse(const std::string& text, const std::string& file, Diagnostics& diag) {
    auto name = std::make_shared<const std::string>(file);
    try {
        YAML::Node root = YAML::Load(text);
        Doc doc = convert(root, name, diag);
        if (doc.mark().line == 0) doc = doc.is_null() ? Doc::null(Mark{name, 1, 1}) : doc;
        return doc;
    } catch (const YAML::Exception& e) {
        diag.error(mark_of(name, e.mark), "YAML syntax: " + e.msg);
        return Doc::null(Mark{name, 1, 1});
    }
}

Doc parse_file(const std::string& path, Diagnostics& diag, const Mark& from) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.error(from, errno_message("cannot read recipe '" + path + "'", errno));
        return Doc::null(from);
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return parse(buffer.str(), path, diag);
}

} // namespace ib::yaml
