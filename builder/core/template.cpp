#include "core/template.hpp"

#include "core/validate.hpp"

#include <cctype>
#include <vector>

namespace ib {

namespace {

bool is_identifier(std::string_view s) {
    return !validate::var_name(s);
}

// Recipe text quoted in a message, cut short: a value can be megabytes long.
std::string quoted(std::string_view s) {
    constexpr size_t k_max = 80;
    if (s.size() <= k_max) return std::string(s);
    return std::string(s.substr(0, k_max)) + "...";
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// One "{{ ... }}" or a run of literal text.
struct Piece {
    bool literal;
    std::string text; // literal text, or the trimmed expression
};

// Splits `text` into pieces; returns an error message on unbalanced braces.
std::optional<std::string> split(std::string_view text, std::vector<Piece>& out) {
    size_t i = 0;
    while (i < text.size()) {
        size_t open = text.find("{{", i);
        if (open == std::string_view::npos) {
            out.push_back({true, std::string(text.substr(i))});
            break;
        }
        if (open > i) out.push_back({true, std::string(text.substr(i, open - i))});
        size_t close = text.find("}}", open + 2);
        // "{{ '{{' }}": the closing braces of a quoted literal are not the end.
        std::string_view inner_start = trim(text.substr(open + 2));
        if (!inner_start.empty() && (inner_start[0] == '\'' || inner_start[0] == '"')) {
            size_t q = text.find(inner_start[0], static_cast<size_t>(inner_start.data() - text.data()) + 1);
            if (q != std::string_view::npos) close = text.find("}}", q + 1);
        }
        if (close == std::string_view::npos) return "unclosed '{{' in '" + quoted(text) + "'";
        out.push_back({false, std::string(trim(text.substr(open + 2, close - open - 2)))});
        i = close + 2;
    }
    return std::nullopt;
}

std::vector<std::string> keys(const std::map<std::string, std::string>& m, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& [k, v] : m) out.push_back(prefix + k);
    return out;
}

} // namespace

std::optional<std::string> render(std::string_view text, const Scope& scope, Diagnostics& diag, const Mark& mark) {
    std::vector<Piece> pieces;
    if (auto err = split(text, pieces)) {
        diag.error(mark, "template: " + *err);
        return std::nullopt;
    }
    std::string out;
    bool ok = true;
    auto append = [&](const std::string& value) {
        if (!diag.charge_expansion(value.size())) {
            diag.error(mark, "template: variables expand to more than " +
                                 std::to_string(Diagnostics::k_max_expansion >> 20) +
                                 " MiB in all (variables made of variables?)");
            return false;
        }
        out += value;
        return true;
    };
    for (const auto& piece : pieces) {
        if (piece.literal) {
            out += piece.text;
            continue;
        }
        const std::string& expr = piece.text;
        if (expr.size() >= 2 && (expr[0] == '\'' || expr[0] == '"') && expr.back() == expr[0]) {
            out += expr.substr(1, expr.size() - 2);
            continue;
        }
        if (expr.rfind("node.", 0) == 0) {
            std::string field = expr.substr(5);
            if (!is_identifier(field)) {
                diag.error(mark, "template '{{" + quoted(expr) + "}}': '" + quoted(field) + "' is not a field name");
                ok = false;
            } else if (!scope.node) {
                diag.error(mark, "template '{{" + quoted(expr) + "}}' needs a node, but " +
                                     (scope.node_context.empty() ? "no node is being built here"
                                                                 : scope.node_context));
                ok = false;
            } else if (auto it = scope.node->find(field); it != scope.node->end()) {
                if (!append(it->second)) return std::nullopt;
            } else {
                diag.error(mark, "template '{{" + quoted(expr) + "}}': node has no field '" + quoted(field) + "'" +
                                     (!diag.wants_hints() ? std::string()
                                                       : did_you_mean("node." + field, keys(*scope.node, "node."))));
                ok = false;
            }
            continue;
        }
        if (!is_identifier(expr)) {
            diag.error(mark, "template '{{" + quoted(expr) + "}}': expected a variable name, 'node.FIELD' or a quoted string");
            ok = false;
            continue;
        }
        if (scope.vars) {
            if (auto it = scope.vars->find(expr); it != scope.vars->end()) {
                if (!append(it->second)) return std::nullopt;
                continue;
            }
        }
        if (!diag.wants_hints()) {
            diag.error(mark, "template '{{" + quoted(expr) + "}}': unknown variable '" + quoted(expr) + "'");
            ok = false;
            continue;
        }
        std::vector<std::string> candidates = scope.vars ? keys(*scope.vars, "") : std::vector<std::string>{};
        if (scope.node) {
            auto node_keys = keys(*scope.node, "node.");
            candidates.insert(candidates.end(), node_keys.begin(), node_keys.end());
        }
        diag.error(mark, "template '{{" + quoted(expr) + "}}': unknown variable '" + quoted(expr) + "'" +
                             did_you_mean(expr, candidates));
        ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
}

bool uses_node(std::string_view text) {
    std::vector<Piece> pieces;
    if (split(text, pieces)) return false;
    for (const auto& p : pieces)
        if (!p.literal && p.text.rfind("node.", 0) == 0) return true;
    return false;
}

bool uses_node(const Doc& doc) {
    switch (doc.kind()) {
    case Doc::Kind::Scalar: return uses_node(doc.str());
    case Doc::Kind::Seq:
        for (const auto& item : doc.items())
            if (uses_node(item)) return true;
        return false;
    case Doc::Kind::Map:
        for (const auto& e : doc.entries())
            if (uses_node(e.value)) return true;
        return false;
    case Doc::Kind::Null: return false;
    }
    return false;
}

Doc render(const Doc& doc, const Scope& scope, Diagnostics& diag) {
    Doc out = doc;
    switch (doc.kind()) {
    case Doc::Kind::Scalar:
        if (doc.str().find("{{") != std::string::npos) {
            if (auto s = render(doc.str(), scope, diag, doc.mark())) out.set_str(*s);
        }
        break;
    case Doc::Kind::Seq:
        for (auto& item : out.items()) item = render(item, scope, diag);
        break;
    case Doc::Kind::Map:
        for (auto& e : out.entries()) e.value = render(e.value, scope, diag);
        break;
    case Doc::Kind::Null: break;
    }
    return out;
}

} // namespace ib
