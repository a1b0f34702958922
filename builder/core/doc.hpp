// A parsed YAML document as plain imgbuild data: maps keep their order, every node its Mark.
//
// The YAML adapter (ext/yaml.cpp) builds it; the recipe loader and the steps read it through the
// helpers below, which report problems into a Diagnostics instead of throwing.
#pragma once

#include "core/diag.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ib {

class Doc {
public:
    enum class Kind { Null, Scalar, Seq, Map };
    struct Item; // a map entry: key, key's mark, value

    Doc() = default;
    static Doc scalar(std::string value, Mark mark = {}, bool plain = true);
    static Doc seq(Mark mark = {});
    static Doc map(Mark mark = {});
    static Doc null(Mark mark = {});

    Kind kind() const { return m_kind; }
    bool is_null() const { return m_kind == Kind::Null; }
    bool is_scalar() const { return m_kind == Kind::Scalar; }
    bool is_seq() const { return m_kind == Kind::Seq; }
    bool is_map() const { return m_kind == Kind::Map; }
    const Mark& mark() const { return m_mark; }

    const std::string& str() const { return m_scalar; } // scalars only
    bool plain() const { return m_plain; }              // written without quotes
    void set_str(std::string value) { m_scalar = std::move(value); }

    const std::vector<Doc>& items() const { return m_items; } // sequences
    std::vector<Doc>& items() { return m_items; }
    const std::vector<Item>& entries() const { return m_entries; } // maps, in document order
    std::vector<Item>& entries() { return m_entries; }

    const Doc* find(std::string_view key) const;
    Doc* find(std::string_view key);
    void set(std::string key, Doc value, Mark key_mark = {});

    // "a map", "a list", "a string", "empty": for messages.
    std::string kind_name() const;

private:
    Kind m_kind = Kind::Null;
    Mark m_mark;
    std::string m_scalar;
    bool m_plain = true;
    std::vector<Doc> m_items;
    std::vector<Item> m_entries;
};

struct Doc::Item {
    std::string key;
    Mark key_mark;
    Doc value;
};

// Reads one map against a fixed set of keys. Keys are claimed by the accessors; finish() reports
// every key nobody claimed as unknown, with a did-you-mean from the claimed ones.
class MapReader {
public:
    // `what` names the map in messages: "step 'files'", "recipe", "node 'worker-1'".
    MapReader(const Doc& doc, Diagnostics& diag, std::string what);
    ~MapReader();

    bool valid() const { return m_doc.is_map(); }
    const Doc* get(const std::string& key);      // nullptr when absent or null
    const Doc* required(const std::string& key); // reports a missing key
    std::optional<std::string> string(const std::string& key, bool required = false);
    std::optional<bool> boolean(const std::string& key);
    std::optional<uint64_t> uint(const std::string& key, uint64_t max = UINT64_MAX);
    std::optional<uint32_t> mode(const std::string& key); // octal permission bits, "0644" or 0644
    std::vector<std::string> strings(const std::string& key); // a string or a list of strings

    // Exactly one of `keys` must be present; returns it, or "" after reporting.
    std::string one_of(const std::vector<std::string>& keys);

    // Reports unknown keys; called by the destructor if not called before.
    void finish();
    const Mark& mark() const { return m_doc.mark(); }
    const std::string& what() const { return m_what; }

private:
    const Doc& m_doc;
    Diagnostics& m_diag;
    std::string m_what;
    std::vector<std::string> m_known;
    bool m_finished = false;
};

// Value helpers on single nodes; each reports into `diag` and returns nullopt when the node is wrong.
std::optional<std::string> doc_string(const Doc& doc, Diagnostics& diag, const std::string& what);
std::optional<bool> doc_bool(const Doc& doc, Diagnostics& diag, const std::string& what);
std::optional<uint64_t> doc_uint(const Doc& doc, Diagnostics& diag, const std::string& what,
                                 uint64_t max = UINT64_MAX);
std::optional<uint32_t> doc_mode(const Doc& doc, Diagnostics& diag, const std::string& what);

} // namespace ib
