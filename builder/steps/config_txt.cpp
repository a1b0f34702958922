// Step `config_txt`: settings in the Raspberry Pi firmware's config.txt (in the boot folder), per
// conditional section.
//
//   - config_txt: {set: {arm_64bit: 1, dtoverlay: [vc4-kms-v3d, disable-bt]}}   # in [all]
//   - config_txt: {section: pi4, set: {arm_boost: 1}, lines: ["dtparam=pciex1_gen=3"]}
//   - config_txt:
//       sections:
//         "[pi4]": {arm_boost: 1}          # brackets optional
//         all: {enable_uart: 1}
//
// A section is every block under a `[NAME]` header, until the next header; the lines above the first
// header belong to [all]. Setting `key: value` replaces the value of each `key=` line in the section's
// blocks, or adds `key=value` after the last non-blank line of its last block. dtoverlay, dtparam and
// gpio repeat legitimately: for them (they take a list too) the exact line is added when the section
// lacks it, and nothing is replaced; so are `lines`, given as raw text. A section the file lacks is
// added at its end. Comments and every other line stay byte for byte; a missing config.txt is created.
// Edits run section by section in the order given, `section`/`set`/`lines` first.
#include "core/boot.hpp"
#include "core/text_file.hpp"
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <array>
#include <map>

namespace ib {

namespace {

constexpr std::array<std::string_view, 3> k_repeatable = {"dtoverlay", "dtparam", "gpio"};

bool repeatable(std::string_view key) {
    return std::find(k_repeatable.begin(), k_repeatable.end(), key) != k_repeatable.end();
}

struct SectionEdit {
    std::string name;                                     // without brackets
    std::vector<std::pair<std::string, std::string>> set; // in order; repeatable keys may come again
    std::vector<std::string> lines;
};

// The section named by a header line ("[pi4]" -> "pi4"), or nullopt for any other line.
std::optional<std::string> header_of(std::string_view line) {
    std::string_view t = text::trim(line);
    if (t.empty() || t[0] != '[') return std::nullopt;
    size_t close = t.find(']');
    return std::string(t.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
}

// "key" of a "key=value" line, "" for comments, headers and anything else.
std::string key_of(std::string_view line) {
    std::string_view t = text::trim(line);
    size_t eq = t.find('=');
    if (t.empty() || t[0] == '#' || t[0] == '[' || eq == std::string_view::npos) return {};
    return std::string(text::trim(t.substr(0, eq)));
}

class ConfigFile {
  public:
    explicit ConfigFile(std::string_view text) : m_text(text::split_lines(text)) {
        m_eol = !m_text.lines.empty() && m_text.lines.front().ends_with('\r') ? "\r" : "";
    }

    std::string text() const { return m_text.text(); }

    void set(const std::string& section, const std::string& key, const std::string& value) {
        std::string line = key + "=" + value;
        if (repeatable(key)) return add_once(section, line);
        bool found = false;
        for (const auto& b : blocks(section))
            for (size_t i = b.body; i < b.end; ++i)
                if (key_of(lines()[i]) == key) {
                    found = true;
                    // Only the setting changes; what surrounds it (indent, '\r') stays.
                    std::string& l = lines()[i];
                    size_t start = l.find_first_not_of(" \t");
                    l = l.substr(0, start) + line + (l.ends_with('\r') ? "\r" : "");
                }
        if (!found) insert(section, line);
    }

    void add_once(const std::string& section, const std::string& line) {
        for (const auto& b : blocks(section))
            for (size_t i = b.body; i < b.end; ++i)
                if (text::trim(lines()[i]) == text::trim(line)) return;
        insert(section, line);
    }

  private:
    struct Block {
        size_t body; // first line after the header
        size_t end;  // one past the last line
    };

    std::vector<std::string>& lines() { return m_text.lines; }

    std::vector<Block> blocks(const std::string& section) const {
        std::vector<Block> out;
        const auto& ls = m_text.lines;
        std::string current = "all"; // above the first header
        size_t body = 0;
        for (size_t i = 0; i <= ls.size(); ++i) {
            std::optional<std::string> header = i < ls.size() ? header_of(ls[i]) : std::string();
            if (!header) continue;
            if (current == section) out.push_back({body, i});
            current = *header;
            body = i + 1;
        }
        return out;
    }

    void insert(const std::string& section, const std::string& line) {
        auto bs = blocks(section);
        // A last line that had no line end gets the file's own once something follows it.
        if (!m_text.final_newline && !m_text.lines.empty()) m_text.lines.back() += m_eol;
        m_text.final_newline = true;
        if (bs.empty()) {
            if (!m_text.lines.empty() && !text::trim(m_text.lines.back()).empty())
                m_text.lines.push_back(m_eol);
            m_text.lines.push_back("[" + section + "]" + m_eol);
            m_text.lines.push_back(line + m_eol);
            return;
        }
        // After the last non-blank line of the last block: the setting then wins over earlier ones,
        // and the blank lines that separate sections stay where they were.
        size_t at = bs.back().end;
        while (at > bs.back().body && text::trim(m_text.lines[at - 1]).empty())
            --at;
        m_text.lines.insert(m_text.lines.begin() + static_cast<long>(at), line + m_eol);
    }

    text::Lines m_text;
    std::string m_eol; // "\r" when the file has CRLF line ends
};

class ConfigTxt final : public Step {
  public:
    std::vector<SectionEdit> m_edits;

    std::string describe() const override {
        std::string s = "edit config.txt:";
        for (const auto& e : m_edits) {
            s += std::string(s.back() == ':' ? " " : "; ") + "[" + e.name + "]";
            for (const auto& [k, v] : e.set)
                s += " " + k + "=" + v;
            if (!e.lines.empty())
                s += " +" + std::to_string(e.lines.size()) + (e.lines.size() == 1 ? " line" : " lines");
        }
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        std::string file = require_boot_dir(tree, "editing config.txt") + "/config.txt";
        ConfigFile config(text::read_or_empty(tree, file));
        for (const auto& e : m_edits) {
            for (const auto& [k, v] : e.set)
                config.set(e.name, k, v);
            for (const auto& l : e.lines)
                config.add_once(e.name, l);
        }
        text::write_if_changed(tree, file, config.text(), 0644, env.now);
    }
};

// A line of config.txt: no line break, NUL or other control character (the firmware's parser ends a
// line at any of them), valid UTF-8.
bool has_line_break(std::string_view s) {
    return validate::one_line(s, true).has_value();
}

class Parser {
  public:
    Parser(StepParseEnv& env, ConfigTxt& step) : m_env(env), m_step(step) {}

    // "[pi4]" or "pi4" -> "pi4"; nullopt after reporting a name that cannot be a section.
    std::optional<std::string> section_name(const std::string& written, const Mark& mark) {
        std::string name = written;
        if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
            name = name.substr(1, name.size() - 2);
        if (name.empty() || name.find_first_of("[]# \t\r\n") != std::string::npos ||
            validate::one_line(name)) {
            m_env.diag.error(mark, m_env.what + ": section '" + validate::shown(written) +
                                       "' is not a filter such as 'pi4' or '[pi4]'");
            return std::nullopt;
        }
        return name;
    }

    SectionEdit& edit(const std::string& name) {
        for (auto& e : m_step.m_edits)
            if (e.name == name) return e;
        return m_step.m_edits.emplace_back(SectionEdit{name, {}, {}});
    }

    // The settings of a {key: value} map into section `name`.
    void settings(const std::string& name, const Doc& map, const std::string& where) {
        if (!map.is_map()) {
            m_env.diag.error(map.mark(), m_env.what + ": " + where +
                                             " must be a map of setting: value, found " + map.kind_name());
            return;
        }
        for (const auto& item : map.entries()) {
            const std::string& key = item.key;
            if (key.empty() ||
                key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                    std::string::npos) {
                m_env.diag.error(item.key_mark,
                                 m_env.what + ": '" + key + "' is not a config.txt setting name");
                continue;
            }
            std::vector<const Doc*> values;
            if (item.value.is_seq() && repeatable(key)) {
                for (const auto& v : item.value.items())
                    values.push_back(&v);
            } else if (item.value.is_seq()) {
                m_env.diag.error(item.value.mark(),
                                 m_env.what + ": '" + key +
                                     "' takes one value; only dtoverlay, dtparam and gpio take a list");
                continue;
            } else {
                values.push_back(&item.value);
            }
            for (const Doc* v : values) {
                auto value = doc_string(*v, m_env.diag, m_env.what + ": value of '" + key + "'");
                if (!value) continue;
                if (has_line_break(*value)) {
                    m_env.diag.error(v->mark(), m_env.what + ": value of '" + key + "' " +
                                                    *validate::one_line(*value, true));
                    continue;
                }
                // YAML reads `enable_uart: true` as a word, which the firmware would not take for 1.
                if (v->plain() && (*value == "true" || *value == "false")) {
                    m_env.diag.error(v->mark(), m_env.what + ": '" + key + "' is " + *value +
                                                    "; config.txt takes 1 or 0");
                    continue;
                }
                if (!repeatable(key)) {
                    auto [it, fresh] = m_seen.emplace(name + "\n" + key, v->mark());
                    if (!fresh) {
                        m_env.diag.error(v->mark(), m_env.what + ": '" + key + "' is set twice for [" + name +
                                                        "] (first at " + it->second.str() + ")");
                        continue;
                    }
                }
                edit(name).set.emplace_back(key, *value);
            }
        }
    }

    // A raw line setting a key that `set` gives another value would be added back after every apply.
    void check_lines() {
        for (const auto& l : m_line_keys)
            if (auto it = m_seen.find(l.section + "\n" + l.key); it != m_seen.end())
                m_env.diag.error(l.mark, m_env.what + ": line '" + l.line + "' sets '" + l.key +
                                             "', which is set for [" + l.section + "] at " +
                                             it->second.str() + " too");
    }

    void raw_lines(const std::string& name, const Doc& list) {
        std::vector<const Doc*> docs;
        if (list.is_seq())
            for (const auto& item : list.items())
                docs.push_back(&item);
        else
            docs.push_back(&list);
        for (const Doc* d : docs) {
            auto line = doc_string(*d, m_env.diag, m_env.what + ": 'lines' item");
            if (!line) continue;
            if (has_line_break(*line))
                m_env.diag.error(d->mark(), m_env.what + ": 'lines' item " +
                                                *validate::one_line(*line, true) +
                                                "; give each line as its own item");
            else if (header_of(*line))
                m_env.diag.error(d->mark(),
                                 m_env.what + ": '" + *line +
                                     "' is a section header; name sections with 'section' or 'sections'");
            else
                add_line(name, *line, d->mark());
        }
    }

  private:
    void add_line(const std::string& section, const std::string& line, const Mark& mark) {
        edit(section).lines.push_back(line);
        if (std::string key = key_of(line); !key.empty() && !repeatable(key))
            m_line_keys.push_back({section, key, line, mark});
    }

    StepParseEnv& m_env;
    ConfigTxt& m_step;
    struct LineKey {
        std::string section, key, line;
        Mark mark;
    };
    std::map<std::string, Mark> m_seen; // section "\n" key -> where it was set
    std::vector<LineKey> m_line_keys;   // raw lines that are settings
};

} // namespace

std::unique_ptr<Step> parse_config_txt(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto step = std::make_unique<ConfigTxt>();
    Parser parser(env, *step);
    const Doc* section = m.get("section");
    const Doc* set = m.get("set");
    const Doc* lines = m.get("lines");
    const Doc* sections = m.get("sections");
    m.finish();
    if (!set && !lines && !sections)
        env.diag.error(options.mark(), env.what + ": nothing to do; give 'set', 'lines' or 'sections'");
    std::optional<std::string> name = "all";
    if (section) {
        auto written = doc_string(*section, env.diag, env.what + ": 'section'");
        name = written ? parser.section_name(*written, section->mark()) : std::nullopt;
        if (name && !set && !lines)
            env.diag.error(section->mark(),
                           env.what + ": 'section' names where 'set' and 'lines' go; give one of them");
    }
    if (name && set) parser.settings(*name, *set, "'set'");
    if (name && lines) parser.raw_lines(*name, *lines);
    if (sections) {
        if (!sections->is_map())
            env.diag.error(sections->mark(),
                           env.what + ": 'sections' must be a map of section: {setting: value}, found " +
                               sections->kind_name());
        for (const auto& item : sections->entries())
            if (auto n = parser.section_name(item.key, item.key_mark))
                parser.settings(*n, item.value, "section '" + item.key + "'");
    }
    parser.check_lines();
    return step;
}

} // namespace ib
