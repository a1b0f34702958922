#include "core/passwd.hpp"

namespace ib::passwd {

namespace {

// Comments, blank lines and NIS compat entries ("+", "-name") are not records a step may edit.
bool is_record(const std::string& line) {
    return !line.empty() && line[0] != '#' && line[0] != '+' && line[0] != '-';
}

} // namespace

std::vector<std::string> split(std::string_view line) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t colon = line.find(':', start);
        out.emplace_back(
            line.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
        if (colon == std::string_view::npos) break;
        start = colon + 1;
    }
    return out;
}

std::string join(const std::vector<std::string>& fields) {
    std::string s;
    for (size_t i = 0; i < fields.size(); ++i)
        s += (i ? ":" : "") + fields[i];
    return s;
}

Table::Table(std::string_view text) {
    m_final_newline = text.empty() || text.back() == '\n';
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) nl = text.size();
        m_lines.emplace_back(text.substr(start, nl - start));
        start = nl + 1;
    }
}

std::optional<size_t> Table::find(std::string_view name) const {
    return find_field(0, name);
}

std::optional<size_t> Table::find_field(size_t field, std::string_view value) const {
    for (size_t i = 0; i < m_lines.size(); ++i) {
        if (!is_record(m_lines[i])) continue;
        auto f = split(m_lines[i]);
        if (f.size() > field && f[field] == value) return i;
    }
    return std::nullopt;
}

void Table::set(size_t i, const std::vector<std::string>& fields) {
    m_lines[i] = join(fields);
}

void Table::add(const std::vector<std::string>& fields) {
    m_lines.push_back(join(fields));
    m_final_newline = true;
}

std::string Table::text() const {
    std::string s;
    for (size_t i = 0; i < m_lines.size(); ++i) {
        s += m_lines[i];
        if (i + 1 < m_lines.size() || m_final_newline) s += '\n';
    }
    return s;
}

std::optional<Table> load(const Tree& tree, std::string_view p) {
    const Entry* e = tree.find(p);
    if (!e || e->type != FileType::Regular) return std::nullopt;
    return Table(read_all(e->content));
}

bool store(Tree& tree, std::string_view p, const Table& table, Timestamp now) {
    std::string text = table.text();
    if (const Entry* e = tree.find(p); e && e->type == FileType::Regular && read_all(e->content) == text)
        return false;
    std::string at = tree.write_file(p, std::move(text));
    tree.edit(at)->mtime = now;
    return true;
}

std::vector<std::string> members(std::string_view field) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= field.size()) {
        size_t comma = field.find(',', start);
        if (comma == std::string_view::npos) comma = field.size();
        if (comma > start) out.emplace_back(field.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

std::string join_members(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names)
        s += (s.empty() ? "" : ",") + n;
    return s;
}

} // namespace ib::passwd
