#include "core/doc.hpp"

#include <algorithm>
#include <charconv>

namespace ib {

Doc Doc::scalar(std::string value, Mark mark, bool plain) {
    Doc d;
    d.m_kind = Kind::Scalar;
    d.m_scalar = std::move(value);
    d.m_mark = std::move(mark);
    d.m_plain = plain;
    return d;
}

Doc Doc::seq(Mark mark) {
    Doc d;
    d.m_kind = Kind::Seq;
    d.m_mark = std::move(mark);
    return d;
}

Doc Doc::map(Mark mark) {
    Doc d;
    d.m_kind = Kind::Map;
    d.m_mark = std::move(mark);
    return d;
}

Doc Doc::null(Mark mark) {
    Doc d;
    d.m_mark = std::move(mark);
    return d;
}

const Doc* Doc::find(std::string_view key) const {
    for (const auto& e : m_entries)
        if (e.key == key) return &e.value;
    return nullptr;
}

Doc* Doc::find(std::string_view key) {
    for (auto& e : m_entries)
        if (e.key == key) return &e.value;
    return nullptr;
}

void Doc::set(std::string key, Doc value, Mark key_mark) {
    if (Doc* existing = find(key)) {
        *existing = std::move(value);
        return;
    }
    m_entries.push_back({std::move(key), std::move(key_mark), std::move(value)});
}

std::string Doc::kind_name() const {
    switch (m_kind) {
    case Kind::Null: return "empty";
    case Kind::Scalar: return "a string";
    case Kind::Seq: return "a list";
    case Kind::Map: return "a map";
    }
    return "?";
}

MapReader::MapReader(const Doc& doc, Diagnostics& diag, std::string what)
    : m_doc(doc), m_diag(diag), m_what(std::move(what)) {
    if (!doc.is_map()) {
        m_diag.error(doc.mark(), m_what + ": expected a map of options, found " + doc.kind_name());
        m_finished = true;
    }
}

MapReader::~MapReader() { finish(); }

const Doc* MapReader::get(const std::string& key) {
    m_known.push_back(key);
    if (!valid()) return nullptr;
    const Doc* d = m_doc.find(key);
    return d && !d->is_null() ? d : nullptr;
}

const Doc* MapReader::required(const std::string& key) {
    const Doc* d = get(key);
    if (!d && valid()) m_diag.error(m_doc.mark(), m_what + ": missing required key '" + key + "'");
    return d;
}

std::optional<std::string> MapReader::string(const std::string& key, bool is_required) {
    const Doc* d = is_required ? required(key) : get(key);
    if (!d) return std::nullopt;
    return doc_string(*d, m_diag, m_what + ": '" + key + "'");
}

std::optional<bool> MapReader::boolean(const std::string& key) {
    const Doc* d = get(key);
    if (!d) return std::nullopt;
    return doc_bool(*d, m_diag, m_what + ": '" + key + "'");
}

std::optional<uint64_t> MapReader::uint(const std::string& key, uint64_t max) {
    const Doc* d = get(key);
    if (!d) return std::nullopt;
    return doc_uint(*d, m_diag, m_what + ": '" + key + "'", max);
}

std::optional<uint32_t> MapReader::mode(const std::string& key) {
    const Doc* d = get(key);
    if (!d) return std::nullopt;
    return doc_mode(*d, m_diag, m_what + ": '" + key + "'");
}

std::vector<std::string> MapReader::strings(const std::string& key) {
    const Doc* d = get(key);
    std::vector<std::string> out;
    if (!d) return out;
    if (d->is_scalar()) {
        out.push_back(d->str());
    } else if (d->is_seq()) {
        for (const auto& item : d->items())
            if (auto s = doc_string(item, m_diag, m_what + ": '" + key + "' item")) out.push_back(*s);
    } else {
        m_diag.error(d->mark(), m_what + ": '" + key + "' must be a string or a list of strings, found " +
                                    d->kind_name());
    }
    return out;
}

std::string MapReader::one_of(const std::vector<std::string>& keys) {
    std::vector<std::string> present;
    for (const auto& k : keys)
        if (get(k)) present.push_back(k);
    if (!valid()) return {};
    auto list = [&](const std::vector<std::string>& ks) {
        std::string s;
        for (const auto& k : ks) s += (s.empty() ? "'" : ", '") + k + "'";
        return s;
    };
    if (present.size() == 1) return present[0];
    if (present.empty())
        m_diag.error(m_doc.mark(), m_what + ": needs one of " + list(keys));
    else
        m_diag.error(m_doc.find(present[1]) ? m_doc.find(present[1])->mark() : m_doc.mark(),
                     m_what + ": " + list(present) + " exclude each other; give one");
    return {};
}

void MapReader::finish() {
    if (m_finished) return;
    m_finished = true;
    for (const auto& e : m_doc.entries()) {
        if (std::find(m_known.begin(), m_known.end(), e.key) != m_known.end()) continue;
        m_diag.error(e.key_mark, m_what + ": unknown key '" + e.key + "'" + did_you_mean(e.key, m_known));
    }
}

std::optional<std::string> doc_string(const Doc& doc, Diagnostics& diag, const std::string& what) {
    if (doc.is_scalar()) return doc.str();
    diag.error(doc.mark(), what + " must be a string, found " + doc.kind_name());
    return std::nullopt;
}

std::optional<bool> doc_bool(const Doc& doc, Diagnostics& diag, const std::string& what) {
    if (doc.is_scalar()) {
        const std::string& s = doc.str();
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    diag.error(doc.mark(), what + " must be true or false, found " +
                               (doc.is_scalar() ? "'" + doc.str() + "'" : doc.kind_name()));
    return std::nullopt;
}

std::optional<uint64_t> doc_uint(const Doc& doc, Diagnostics& diag, const std::string& what, uint64_t max) {
    if (doc.is_scalar()) {
        const std::string& s = doc.str();
        uint64_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size() && !s.empty() && v <= max) return v;
    }
    diag.error(doc.mark(), what + " must be a whole number" +
                               (max != UINT64_MAX ? " up to " + std::to_string(max) : std::string()) +
                               ", found " + (doc.is_scalar() ? "'" + doc.str() + "'" : doc.kind_name()));
    return std::nullopt;
}

std::optional<uint32_t> doc_mode(const Doc& doc, Diagnostics& diag, const std::string& what) {
    if (doc.is_scalar()) {
        // Always octal, whether written 0644, "0644" or 644: a mode is never meant in decimal.
        const std::string& s = doc.str();
        uint32_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 8);
        if (ec == std::errc() && end == s.data() + s.size() && !s.empty() && v <= 07777) return v;
    }
    diag.error(doc.mark(), what + " must be an octal mode such as 0644, found " +
                               (doc.is_scalar() ? "'" + doc.str() + "'" : doc.kind_name()));
    return std::nullopt;
}

} // namespace ib
