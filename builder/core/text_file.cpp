#include "core/text_file.hpp"

#include "core/error.hpp"

namespace ib::text {

std::string Lines::text() const {
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        out += lines[i];
        if (i + 1 < lines.size() || final_newline) out += '\n';
    }
    return out;
}

Lines split_lines(std::string_view text) {
    Lines out;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) {
            out.lines.emplace_back(text.substr(start));
            out.final_newline = false;
            break;
        }
        out.lines.emplace_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::string_view trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

std::string read_or_empty(const Tree& tree, std::string_view p) {
    const Entry* e = tree.find(p);
    if (!e) return {};
    if (e->type != FileType::Regular)
        throw Error("'" + std::string(p) + "' is a " + std::string(type_name(e->type)) +
                    " in the image, not a file");
    return read_all(e->content);
}

bool write_if_changed(Tree& tree, std::string_view p, const std::string& text, uint32_t perm, Timestamp now) {
    if (const Entry* e = tree.find(p);
        e && e->type == FileType::Regular && e->size() == text.size() && read_all(e->content) == text)
        return false;
    std::string at = tree.write_file(p, text, perm);
    tree.edit(at)->mtime = now;
    return true;
}

} // namespace ib::text
