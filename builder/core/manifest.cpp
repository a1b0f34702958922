// The build manifest (manifest.hpp). JSON is written by hand: a handful of shapes, and no adapter
// library needs to see the Plan.
#include "core/manifest.hpp"

#include "core/error.hpp"
#include "core/template.hpp"
#include "ext/sha256.hpp"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

namespace ib {

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not one (overlong, surrogate, > U+10FFFF).
size_t utf8_length(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    unsigned char c = b(0);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((b(k) & 0xC0) != 0x80) return 0;
    if (n == 2 && c < 0xC2) return 0;
    if (n == 3 && ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) >= 0xA0))) return 0;
    if (n == 4 && ((c == 0xF0 && b(1) < 0x90) || c > 0xF4 || (c == 0xF4 && b(1) >= 0x90))) return 0;
    return n;
}

std::string doc_json(const Doc& doc) {
    switch (doc.kind()) {
    case Doc::Kind::Null: return "null";
    case Doc::Kind::Scalar: return json_string(doc.str());
    case Doc::Kind::Seq: {
        std::string s = "[";
        for (size_t i = 0; i < doc.items().size(); ++i) s += (i ? "," : "") + doc_json(doc.items()[i]);
        return s + "]";
    }
    case Doc::Kind::Map: {
        std::string s = "{";
        for (size_t i = 0; i < doc.entries().size(); ++i)
            s += (i ? "," : "") + json_string(doc.entries()[i].key) + ":" + doc_json(doc.entries()[i].value);
        return s + "}";
    }
    }
    return "null";
}

void collect_files(const Doc& doc, std::set<std::string>& files) {
    if (doc.mark().file) files.insert(*doc.mark().file);
    for (const auto& item : doc.items()) collect_files(item, files);
    for (const auto& e : doc.entries()) collect_files(e.value, files);
}

std::string string_map_json(const std::map<std::string, std::string>& m) {
    std::string s = "{";
    bool first = true;
    for (const auto& [k, v] : m) {
        s += (first ? "" : ",") + json_string(k) + ":" + json_string(v);
        first = false;
    }
    return s + "}";
}

std::string sha256_or_null(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "null";
    auto sum = sha256_file(path);
    return sum ? json_string(sum.value()) : "null";
}

// The base as written, and what it names once rendered: the kind, the path or URL, the pin, and the
// sha256 of a local file (a URL's file is the pin's, checked when it was downloaded).
std::string base_json(const Recipe& r) {
    if (r.base.is_null()) return "null";
    Diagnostics diag;
    Scope scope{&r.vars, nullptr, "the base is shared by all nodes"};
    Doc rendered = render(r.base, scope, diag);
    std::string s = "{\"as_written\":" + doc_json(r.base);
    for (const char* kind : {"tarball", "image", "dir"}) {
        const Doc* d = rendered.find(kind);
        if (!d || !d->is_scalar()) continue;
        const std::string& v = d->str();
        bool url = v.starts_with("http://") || v.starts_with("https://") || v.starts_with("file://");
        std::string path = url ? v : host_path(d->mark(), v);
        s += ",\"kind\":" + json_string(kind) + (url ? ",\"url\":" : ",\"path\":") + json_string(path);
        if (!url) s += ",\"sha256\":" + sha256_or_null(path);
    }
    if (const Doc* pin = rendered.find("sha256"); pin && pin->is_scalar()) s += ",\"pin\":" + json_string(pin->str());
    return s + "}";
}

std::string files_json(const std::string& out_dir) {
    std::ifstream in(out_dir + "/SHA256SUMS");
    if (!in) throw Error("manifest: cannot read '" + out_dir + "/SHA256SUMS'");
    std::string s = "[", line;
    bool first = true;
    while (std::getline(in, line)) {
        if (line.size() < 67 || line.compare(64, 2, "  ") != 0) continue;
        std::string rel = line.substr(66);
        struct stat st {};
        if (::stat((out_dir + "/" + rel).c_str(), &st) != 0) continue; // a node folder kept from before
        s += std::string(first ? "" : ",") + "{\"path\":" + json_string(rel) +
             ",\"size\":" + std::to_string(st.st_size) + ",\"sha256\":" + json_string(line.substr(0, 64)) + "}";
        first = false;
    }
    return s + "]";
}

} // namespace

std::string json_string(std::string_view text) {
    static const char* hex = "0123456789abcdef";
    std::string s = "\"";
    for (size_t i = 0; i < text.size();) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            s += '\\';
            s += static_cast<char>(c);
        } else if (c == '\n') {
            s += "\\n";
        } else if (c == '\t') {
            s += "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            s += "\\u00";
            s += hex[c >> 4];
            s += hex[c & 15];
        } else if (c >= 0x80) {
            size_t n = utf8_length(text, i);
            if (n == 0) {
                s += "\\ufffd";
                ++i;
                continue;
            }
            s.append(text.substr(i, n));
            i += n;
            continue;
        } else {
            s += static_cast<char>(c);
        }
        ++i;
    }
    return s + "\"";
}

std::string manifest_json(const Plan& plan, const std::string& version, const std::string& out_dir) {
    const Recipe& r = plan.recipe;
    std::set<std::string> files{r.file};
    collect_files(r.base, files);
    for (const auto& d : r.steps) collect_files(d, files);
    for (const auto& d : r.outputs) collect_files(d, files);
    for (const auto& n : r.nodes)
        if (n.mark.file) files.insert(*n.mark.file);

    std::ostringstream o;
    o << "{\"format\":\"imgbuild-manifest/1\",\"imgbuild\":{\"version\":" << json_string(version) << "}";
    o << ",\"recipe\":{\"name\":" << json_string(r.name) << ",\"file\":" << json_string(r.file) << ",\"files\":[";
    bool first = true;
    for (const auto& f : files) {
        o << (first ? "" : ",") << "{\"path\":" << json_string(f) << ",\"sha256\":" << sha256_or_null(f) << "}";
        first = false;
    }
    o << "]}";
    o << ",\"epoch\":{\"seconds\":" << plan.now.sec << ",\"source\":" << json_string(plan.epoch_source) << "}";
    o << ",\"base\":" << base_json(r);
    o << ",\"vars\":" << string_map_json(r.vars);
    o << ",\"nodes\":[";
    for (size_t i = 0; i < r.nodes.size(); ++i)
        o << (i ? "," : "") << "{\"name\":" << json_string(r.nodes[i].name) << ",\"fields\":" << string_map_json(r.nodes[i].fields) << "}";
    o << "]";
    // The plan holds one entry per recipe item once make_plan succeeded, in the same order.
    auto items = [&](const std::vector<Doc>& docs, auto per_node) {
        o << "[";
        for (size_t i = 0; i < docs.size(); ++i) {
            const Doc& d = docs[i];
            if (!d.is_map() || d.entries().size() != 1) continue;
            o << (i ? "," : "") << "{\"type\":" << json_string(d.entries()[0].key)
              << ",\"per_node\":" << (per_node(i) ? "true" : "false") << ",\"options\":" << doc_json(d.entries()[0].value) << "}";
        }
        o << "]";
    };
    o << ",\"steps\":";
    items(r.steps, [&](size_t i) { return i < plan.steps.size() && plan.steps[i].per_node; });
    o << ",\"outputs\":";
    items(r.outputs, [&](size_t i) { return i < plan.outputs.size() && plan.outputs[i].per_node; });
    if (!out_dir.empty()) o << ",\"files\":" << files_json(out_dir);
    o << "}\n";
    return o.str();
}

} // namespace ib
