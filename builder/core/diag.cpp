#include "core/diag.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <tuple>
#include <unordered_set>

namespace ib {

std::string Mark::str() const {
    if (!file) return {};
    return *file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

void Diagnostics::error(const Mark& mark, std::string message) {
    if (!saturated()) m_items.push_back({mark, std::move(message), true});
    ++m_errors;
}

void Diagnostics::warning(const Mark& mark, std::string message) {
    m_items.push_back({mark, std::move(message), false});
}

std::vector<std::string> Diagnostics::formatted(bool errors) const {
    std::vector<const Item*> items;
    for (const auto& item : m_items)
        if (item.is_error == errors) items.push_back(&item);
    std::stable_sort(items.begin(), items.end(), [](const Item* a, const Item* b) {
        auto key = [](const Item* i) {
            return std::make_tuple(i->mark.file ? *i->mark.file : std::string(), i->mark.line, i->mark.col);
        };
        return key(a) < key(b);
    });
    std::vector<std::string> lines;
    std::unordered_set<std::string> seen;
    for (const Item* item : items) {
        std::string place = item->mark.str();
        std::string line = place.empty() ? std::string() : place + ": ";
        if (!errors) line += "warning: ";
        line += item->message;
        if (seen.insert(line).second) lines.push_back(std::move(line));
    }
    return lines;
}

void Diagnostics::checkpoint() const {
    if (!has_errors()) return;
    std::string text;
    for (const auto& line : formatted(true)) {
        if (!text.empty()) text += '\n';
        text += line;
    }
    if (m_errors > k_max_kept)
        text += "\n... and " + std::to_string(m_errors - k_max_kept) + " more errors (the first " +
                std::to_string(k_max_kept) + " are shown)";
    throw Error(text, k_exit_usage);
}

std::vector<std::string> Diagnostics::warnings() const { return formatted(false); }

namespace {
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}
} // namespace

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
    for (const auto& candidate : candidates) {
        // The distance is at least the difference in length: skip the costly part for most
        // candidates, and for a word megabytes long.
        size_t gap = word.size() > candidate.size() ? word.size() - candidate.size() : candidate.size() - word.size();
        if (gap >= best_distance) continue;
        size_t d = edit_distance(word, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    std::string best = closest(word, candidates);
    return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
}

} // namespace ib
