// Step `locale`: the system's default locale, as `update-locale LANG=...` and the locales package set
// it: LANG= in /etc/default/locale (its other lines kept), and the locale's line uncommented in
// /etc/locale.gen (added when absent; both files are created when missing).
//
//   - locale: en_GB.UTF-8
//   - locale: C.UTF-8                 # built into glibc: /etc/locale.gen is left alone
//
// Only UTF-8 locales are taken, written as Debian writes them (ll_CC.UTF-8, with an optional
// @modifier). Nothing runs in the image: a locale that the image has not compiled yet is compiled
// by locale-gen, not by this step.
#include "core/text_file.hpp"
#include "steps/step.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace ib {

namespace {

class Locale final : public Step {
  public:
    explicit Locale(std::string name) : m_name(std::move(name)) {}

    std::string describe() const override { return "set locale to " + m_name; }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        tree.mkdirs("/etc/default", Entry::directory(0755, env.now));
        text::Lines defaults = text::split_lines(text::read_or_empty(tree, "/etc/default/locale"));
        set_lang(defaults);
        text::write_if_changed(tree, "/etc/default/locale", defaults.text(), 0644, env.now);
        if (m_name == "C.UTF-8") return;
        text::Lines gen = text::split_lines(text::read_or_empty(tree, "/etc/locale.gen"));
        enable_in_locale_gen(gen);
        text::write_if_changed(tree, "/etc/locale.gen", gen.text(), 0644, env.now);
    }

  private:
    // The first LANG= line gets the new value, later ones go (the last would win).
    void set_lang(text::Lines& file) const {
        std::string line = "LANG=" + m_name;
        bool placed = false;
        std::vector<std::string> out;
        for (auto& l : file.lines) {
            if (!text::trim(l).starts_with("LANG=")) {
                out.push_back(l);
            } else if (!placed) {
                out.push_back(line);
                placed = true;
            }
        }
        if (!placed) {
            out.push_back(line);
            file.final_newline = true;
        }
        file.lines = std::move(out);
    }

    void enable_in_locale_gen(text::Lines& file) const {
        const std::vector<std::string> want = {m_name, "UTF-8"};
        auto words = [](std::string_view s) {
            std::vector<std::string> out;
            std::stringstream in{std::string(s)};
            std::string w;
            while (in >> w)
                out.push_back(w);
            return out;
        };
        for (const auto& l : file.lines)
            if (words(l) == want) return;
        for (auto& l : file.lines) {
            std::string_view t = text::trim(l);
            if (!t.starts_with("#")) continue;
            // A line of only '#' has nothing after them (npos: removing that much was undefined).
            t.remove_prefix(std::min(t.size(), t.find_first_not_of('#')));
            if (words(t) == want) {
                l = m_name + " UTF-8";
                return;
            }
        }
        file.lines.push_back(m_name + " UTF-8");
        file.final_newline = true;
    }

    std::string m_name;
};

bool is_lower(std::string_view s) {
    for (char c : s)
        if (c < 'a' || c > 'z') return false;
    return true;
}

bool is_upper(std::string_view s) {
    for (char c : s)
        if (c < 'A' || c > 'Z') return false;
    return true;
}

// ll_CC.UTF-8 or ll_CC.UTF-8@modifier (ll: 2 or 3 letters).
bool is_locale(const std::string& name) {
    if (name == "C.UTF-8") return true;
    size_t under = name.find('_'), dot = name.find('.');
    if (under == std::string::npos || dot == std::string::npos || dot < under) return false;
    std::string lang = name.substr(0, under), country = name.substr(under + 1, dot - under - 1);
    std::string rest = name.substr(dot);
    if (lang.size() < 2 || lang.size() > 3 || !is_lower(lang) || country.size() != 2 || !is_upper(country))
        return false;
    if (rest == ".UTF-8") return true;
    return rest.starts_with(".UTF-8@") && rest.size() > 7 && is_lower(rest.substr(7));
}

// The spelling Debian uses for what the user probably meant: "en_gb.utf8" -> "en_GB.UTF-8".
std::string canonical(const std::string& name) {
    size_t at = name.find('@');
    std::string modifier = at == std::string::npos ? "" : name.substr(at);
    std::string base = name.substr(0, at), locale = base.substr(0, base.find('.'));
    std::string out;
    bool country = false;
    for (char c : locale) {
        if (c == '_') country = true;
        out += static_cast<char>(country ? std::toupper(static_cast<unsigned char>(c))
                                         : std::tolower(static_cast<unsigned char>(c)));
    }
    if (out == "c" || out == "C") out = "C";
    return out + ".UTF-8" + modifier;
}

} // namespace

std::unique_ptr<Step> parse_locale(const Doc& options, StepParseEnv& env) {
    if (!options.is_scalar()) {
        env.diag.error(options.mark(),
                       env.what + ": expected a locale such as 'en_GB.UTF-8', found " + options.kind_name());
        return nullptr;
    }
    const std::string& name = options.str();
    if (!is_locale(name)) {
        std::string guess = canonical(name);
        env.diag.error(options.mark(), env.what + ": '" + name +
                                           "' is not a UTF-8 locale such as 'en_GB.UTF-8'" +
                                           (is_locale(guess) ? " (did you mean '" + guess + "'?)" : ""));
        return nullptr;
    }
    return std::make_unique<Locale>(name);
}

} // namespace ib
