// Templating (core/template.cpp): the input up to the first NUL is rendered with a few vars and a
// node; the rest, if any, is rendered without a node (the var and base scope).
#include "core/template.hpp"
#include "fuzz_input.hpp"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::map<std::string, std::string> vars = {{"domain", "cluster.lan"}, {"a", "{{b}}"}, {"x-y", ""}};
    static const std::map<std::string, std::string> node = {{"name", "n1"}, {"ip", "10.0.0.1/24"}, {"role", "gpu"}};
    std::string_view all(reinterpret_cast<const char*>(data), size);
    size_t nul = all.find('\0');
    ib::Diagnostics diag;
    ib::Scope with_node{&vars, &node, ""};
    ib::Scope without{&vars, nullptr, "no node here"};
    (void)ib::render(all.substr(0, nul), with_node, diag, {});
    (void)ib::uses_node(all.substr(0, nul));
    if (nul != std::string_view::npos) (void)ib::render(all.substr(nul + 1), without, diag, {});
    return 0;
}
