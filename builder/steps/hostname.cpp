// Step `hostname`: /etc/hostname and the 127.0.1.1 line of /etc/hosts (Debian's convention for the
// machine's own name).
//
//   - hostname: worker-1
//   - hostname: {name: "{{node.name}}", domain: cluster.lan}
#include "core/validate.hpp"
#include "steps/step.hpp"

#include <sstream>

namespace ib {

namespace {

class Hostname final : public Step {
public:
    Hostname(std::string name, std::string domain) : m_name(std::move(name)), m_domain(std::move(domain)) {}

    std::string describe() const override {
        return "set hostname to '" + m_name + "'" + (m_domain.empty() ? "" : " in domain '" + m_domain + "'");
    }

    void apply(Tree& tree, const StepApplyEnv&) const override {
        tree.write_file("/etc/hostname", m_name + "\n");
        tree.write_file("/etc/hosts", edit_hosts(tree.exists("/etc/hosts") ? tree.read_file("/etc/hosts") : ""));
    }

private:
    std::string edit_hosts(const std::string& old) const {
        std::string own = "127.0.1.1\t" + (m_domain.empty() ? m_name : m_name + "." + m_domain + " " + m_name);
        if (old.empty())
            return "127.0.0.1\tlocalhost\n" + own +
                   "\n\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n";
        std::vector<std::string> lines;
        std::stringstream in(old);
        std::string line;
        size_t insert_at = 0;
        bool placed = false;
        while (std::getline(in, line)) {
            std::string first = line.substr(0, line.find_first_of(" \t"));
            if (first == "127.0.1.1") {
                if (!placed) lines.push_back(own); // keep the line where the image had it
                placed = true;
                continue;
            }
            lines.push_back(line);
            if (first == "127.0.0.1") insert_at = lines.size();
        }
        if (!placed) lines.insert(lines.begin() + static_cast<long>(insert_at), own);
        std::string out;
        for (const auto& l : lines) out += l + "\n";
        return out;
    }

    std::string m_name;
    std::string m_domain;
};

} // namespace

std::unique_ptr<Step> parse_hostname(const Doc& options, StepParseEnv& env) {
    std::optional<std::string> name, domain;
    const Doc* name_doc = &options;
    if (options.is_scalar()) {
        name = options.str();
    } else {
        MapReader m(options, env.diag, env.what);
        if (!m.valid()) return nullptr;
        name = m.string("name", true);
        domain = m.string("domain");
        if (const Doc* d = options.find("name")) name_doc = d;
        if (domain) {
            if (auto why = validate::hostname(*domain))
                env.diag.error(options.find("domain")->mark(), env.what + ": domain '" + *domain + "' " + *why);
        }
    }
    if (!name) return nullptr;
    if (auto why = validate::hostname(*name)) {
        env.diag.error(name_doc->mark(), env.what + ": '" + *name + "' is not a valid host name: it " + *why);
        return nullptr;
    }
    if (name->find('.') != std::string::npos) {
        env.diag.error(name_doc->mark(), env.what + ": '" + *name + "' has a dot; give the domain as 'domain'");
        return nullptr;
    }
    return std::make_unique<Hostname>(*name, domain.value_or(""));
}

} // namespace ib
