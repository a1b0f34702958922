// Step `timezone`: the system's time zone, as Debian's tzdata sets it: /etc/timezone holds the name,
// /etc/localtime links to its file under /usr/share/zoneinfo.
//
//   - timezone: Europe/Berlin
//   - timezone: UTC
//
// The name is checked for its shape when the recipe is read (Area/City, Area/Region/City, Etc/..., or
// UTC), and against the image's /usr/share/zoneinfo when the step runs.
#include "core/error.hpp"
#include "core/text_file.hpp"
#include "steps/step.hpp"

namespace ib {

namespace {

class Timezone final : public Step {
  public:
    explicit Timezone(std::string name) : m_name(std::move(name)) {}

    std::string describe() const override { return "set time zone to " + m_name; }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        std::string zone = "/usr/share/zoneinfo/" + m_name;
        const Entry* e = tree.find(zone);
        if (!e || e->type != FileType::Regular)
            throw Error("time zone '" + m_name + "' is not in the image: " + zone +
                        (e ? " is not a file" : " is missing (is tzdata installed?)"));
        tree.mkdirs("/etc", Entry::directory(0755, env.now));
        text::write_if_changed(tree, "/etc/timezone", m_name + "\n", 0644, env.now);
        if (const Entry* l = tree.get("/etc/localtime"); l && l->type == FileType::Symlink && l->link == zone)
            return;
        tree.put("/etc/localtime", Entry::symlink(zone, env.now));
    }

  private:
    std::string m_name;
};

// tzdata's names: components of letters, digits, '_', '-' and '+', each starting with a capital.
bool looks_like_zone(const std::string& name) {
    if (name == "UTC") return true;
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t slash = name.find('/', start);
        parts.push_back(name.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    if (parts.size() < 2 || parts.size() > 3) return false;
    for (const auto& p : parts)
        if (p.empty() || p[0] < 'A' || p[0] > 'Z' ||
            p.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+") !=
                std::string::npos)
            return false;
    return true;
}

} // namespace

std::unique_ptr<Step> parse_timezone(const Doc& options, StepParseEnv& env) {
    if (!options.is_scalar()) {
        env.diag.error(options.mark(), env.what +
                                           ": expected a time zone name such as 'Europe/Berlin', found " +
                                           options.kind_name());
        return nullptr;
    }
    const std::string& name = options.str();
    if (!looks_like_zone(name)) {
        env.diag.error(options.mark(),
                       env.what + ": '" + name +
                           "' is not a time zone name such as 'Europe/Berlin', 'Etc/GMT-1' or 'UTC'");
        return nullptr;
    }
    return std::make_unique<Timezone>(name);
}

} // namespace ib
