// Small text files in the tree (config.txt, fstab, locale.gen, ...) read and rewritten line by line,
// for steps that change a few lines and must keep every other byte as it was.
#pragma once

#include "core/tree.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ib::text {

// A file's lines without their '\n' ('\r' stays part of a line). `final_newline` is false only when
// the text had a last line without '\n'; text() then gives back exactly the bytes that were split.
struct Lines {
    std::vector<std::string> lines;
    bool final_newline = true;

    std::string text() const;
};
Lines split_lines(std::string_view text);

// `s` without leading and trailing spaces, tabs and '\r'.
std::string_view trim(std::string_view s);

// The text of the regular file at `p` (links followed), or "" when nothing is there. Throws Error
// when `p` is something other than a regular file.
std::string read_or_empty(const Tree& tree, std::string_view p);

// Writes `text` at `p` unless the file already holds exactly that, so that a step applied twice leaves
// the same tree as once (an unchanged file keeps its mtime). A file written gets `now` as its mtime; an
// existing one keeps its owner and mode, a new one is root's with `perm`. Returns whether it wrote.
bool write_if_changed(Tree& tree, std::string_view p, const std::string& text, uint32_t perm, Timestamp now);

} // namespace ib::text
