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
    // Past this many errors the rest are only counted: a hostile recipe can hold millions, and
    // nobody reads past the first screens. Callers may skip costly hints (did-you-mean) then.
    static constexpr size_t k_max_kept = 1000;
    bool saturated() const { return m_errors >= k_max_kept; }
    // Whether a did-you-mean is still worth its cost (an edit distance per candidate).
    bool wants_hints() const { return m_errors < 100; }

    // Bytes that templates may copy out of variables in all, over one recipe's load and plan. Vars
    // built of vars double at each level ("{{b}}{{b}}" with b "{{c}}{{c}}"): 30 of them make 2^30
    // copies of one byte. Returns false once the total would pass k_max_expansion.
    static constexpr size_t k_max_expansion = 256u << 20;
    bool charge_expansion(size_t bytes) {
        if (bytes > k_max_expansion - m_expanded) return false;
        m_expanded += bytes;
        return true;
    }

    // Throws Error(k_exit_usage) with every error kept, each on its own line "file:line:col: message",
    // sorted by file, line and column, duplicates dropped, then how many more were not kept. Does
    // nothing when there is no error.
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
    size_t m_expanded = 0;
};

// The candidate closest to `word` by edit distance, or "" when none is close enough to suggest.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

} // namespace ib
