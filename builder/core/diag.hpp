// Places in recipe files and the list of problems found in them.
//
// Validation reports every problem at once: code adds to a Diagnostics as it goes and
// calls checkpoint() where it cannot go on, which throws one Error listing everything, sorted by place.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ib {

// A position in a recipe file, 1-based. An empty Mark (no file) prints as nothing.
struct Mark {
    std::shared_ptr<const std::string> file;
    int line = 0;
    int col = 0;

    bool empty() const { return !file; }
    // "recipes/worker.yaml:14:5"
    std::string str() const;
};

class Diagnostics {
public:
    void error(const Mark& mark, std::string message);
    void warning(const Mark& mark, std::string message);

    bool has_errors() const { return m_errors > 0; }
    size_t error_count() const { return m_errors; }

    // Throws Error(k_exit_usage) with every error, each on its own line "file:line:col: message",
    // sorted by file, line and column, duplicates dropped. Does nothing when there is no error.
    void checkpoint() const;

    // Warnings collected so far, formatted like errors with "warning: " after the place.
    std::vector<std::string> warnings() const;

private:
    struct Item {
        Mark mark;
        std::string message;
        bool is_error;
    };
    std::vector<std::string> formatted(bool errors) const;
    std::vector<Item> m_items;
    size_t m_errors = 0;
};

// The candidate closest to `word` by edit distance, or "" when none is close enough to suggest.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

} // namespace ib
