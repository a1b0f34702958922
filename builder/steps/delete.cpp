// Step `delete`: remove paths from the image, with everything below them. Links are removed, not
// followed. A pattern that matches nothing is a warning, or an error with `must_exist: true`.
//
//   - delete: /etc/ssh/ssh_host_*
//   - delete: {paths: [/usr/share/doc, /var/cache/apt/*.bin], must_exist: false}
#include "core/error.hpp"
#include "core/log.hpp"
#include "steps/step.hpp"

namespace ib {

namespace {

class Delete final : public Step {
public:
    Delete(std::vector<std::string> paths, bool must_exist) : m_paths(std::move(paths)), m_must_exist(must_exist) {}

    std::string describe() const override {
        std::string s = "delete";
        for (const auto& p : m_paths) s += " " + p;
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv&) const override {
        for (const auto& pattern : m_paths) {
            std::vector<std::string> matches = tree.glob(pattern);
            if (matches.empty()) {
                if (m_must_exist) throw Error("'" + pattern + "' matches nothing in the image");
                log::detail("delete: '" + pattern + "' matches nothing");
            }
            for (const auto& p : matches) tree.remove(p);
        }
    }

private:
    std::vector<std::string> m_paths;
    bool m_must_exist;
};

} // namespace

std::unique_ptr<Step> parse_delete(const Doc& options, StepParseEnv& env) {
    std::vector<std::string> paths;
    bool must_exist = false;
    std::vector<const Doc*> docs;
    if (options.is_scalar()) {
        docs.push_back(&options);
    } else if (options.is_seq()) {
        for (const auto& item : options.items()) docs.push_back(&item);
    } else {
        MapReader m(options, env.diag, env.what);
        if (!m.valid()) return nullptr;
        if (const Doc* p = m.required("paths")) {
            if (p->is_seq())
                for (const auto& item : p->items()) docs.push_back(&item);
            else
                docs.push_back(p);
        }
        must_exist = m.boolean("must_exist").value_or(false);
    }
    for (const Doc* d : docs) {
        auto s = doc_string(*d, env.diag, env.what + ": path");
        if (!s) continue;
        if (s->empty() || (*s)[0] != '/') {
            env.diag.error(d->mark(), env.what + ": '" + *s + "' must be an absolute path in the image");
        } else if (path::normalise(*s) == "/") {
            env.diag.error(d->mark(), env.what + ": refusing to delete the whole image ('" + *s + "')");
        } else {
            paths.push_back(*s);
        }
    }
    if (docs.empty()) env.diag.error(options.mark(), env.what + ": needs at least one path");
    return std::make_unique<Delete>(std::move(paths), must_exist);
}

} // namespace ib
