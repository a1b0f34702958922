// The colon-separated account databases (/etc/passwd, /etc/shadow, /etc/group, /etc/gshadow) as tables
// of lines that can be edited one line at a time.
//
// Contract: text() returns the input byte for byte when nothing was changed, and a changed file
// differs only in the lines that were set, removed or added. Lines that are not records (comments,
// blank lines, NIS "+" entries) are kept as they are and never match a name.
#pragma once

#include "core/tree.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ib::passwd {

// "a:b::c" -> {"a", "b", "", "c"}; a trailing ':' gives a trailing empty field.
std::vector<std::string> split(std::string_view line);
std::string join(const std::vector<std::string>& fields);

class Table {
  public:
    explicit Table(std::string_view text);

    size_t size() const { return m_lines.size(); }
    const std::string& line(size_t i) const { return m_lines[i]; }
    std::vector<std::string> fields(size_t i) const { return split(m_lines[i]); }

    // Index of the first record whose first field is `name`.
    std::optional<size_t> find(std::string_view name) const;
    // Index of the first record whose field `field` equals `value` ("1000" in field 2: the uid).
    std::optional<size_t> find_field(size_t field, std::string_view value) const;

    // Replaces line `i` by the joined fields.
    void set(size_t i, const std::vector<std::string>& fields);
    // Appends a record at the end.
    void add(const std::vector<std::string>& fields);

    // The whole file; ends with a newline when the input did, or when lines were added.
    std::string text() const;

  private:
    std::vector<std::string> m_lines;
    bool m_final_newline = true;
};

// The table of the regular file `p` in the tree, nullopt when there is no such file.
std::optional<Table> load(const Tree& tree, std::string_view p);
// Writes `table` back to `p` when its text differs from the file's: owner, mode and xattrs stay as the
// image has them, the mtime becomes `now`. Returns whether the file changed.
bool store(Tree& tree, std::string_view p, const Table& table, Timestamp now);

// A split list field ("adm,sudo,pi") and back; empty members are dropped.
std::vector<std::string> members(std::string_view field);
std::string join_members(const std::vector<std::string>& names);

} // namespace ib::passwd
