// Templating of recipe strings: "{{name}}" takes a recipe variable, "{{node.x}}" a field of the node
// being built (name, mac, serial, ip, index, or one of the node's own vars). "{{ '{{' }}" writes a
// literal "{{". Nothing else is allowed between the braces.
#pragma once

#include "core/diag.hpp"
#include "core/doc.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ib {

struct Scope {
    const std::map<std::string, std::string>* vars = nullptr;
    const std::map<std::string, std::string>* node = nullptr; // null outside a node
    std::string node_context;                                 // why no node: for the message
};

// Renders `text`; reports bad or unknown names at `mark` and returns nullopt.
std::optional<std::string> render(std::string_view text, const Scope& scope, Diagnostics& diag, const Mark& mark);

// True when `text` refers to any node field; malformed templates count as not referring.
bool uses_node(std::string_view text);
bool uses_node(const Doc& doc);

// A copy of `doc` with every scalar rendered; keys are left alone.
Doc render(const Doc& doc, const Scope& scope, Diagnostics& diag);

} // namespace ib
