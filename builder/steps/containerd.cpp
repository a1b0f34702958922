// Step `containerd`: containerd, runc and (optionally) the CNI plugins, from upstream release files or
// from .deb packages, with containerd.service enabled and a config.toml for Kubernetes' CRI.
//
//   - containerd:
//       containerd: ../downloads/containerd-1.7.20-linux-arm64.tar.gz  # release tarball, or a .deb
//       runc: ../downloads/runc.arm64                                  # release binary, or a .deb
//       cni: ../downloads/cni-plugins-linux-arm64-v1.5.1.tgz           # optional
//       version: "1.7"        # optional; picks the config.toml format. Default: the .deb's Version,
//                             # else the version in the file name ("containerd-1.7.20-...")
//       config: default       # or none: no /etc/containerd/config.toml
//       systemd_cgroup: true  # runc under the systemd cgroup driver (kubelet's default on systemd hosts)
//
// A release tarball's bin/* go to /usr/local/bin (0755) and containerd.service is written to
// /usr/local/lib/systemd/system; a release runc goes to /usr/local/sbin/runc (0755). A .deb's data.tar
// members go to their own paths with their own modes and owners, and the containerd.service it ships is
// the one enabled; no maintainer script runs and dpkg's database is left alone. Every file of the CNI
// tarball goes to /opt/cni/bin (0755). Every ELF binary installed must be built for the image's
// architecture (arch::image_arch); the .deb and tarball contents are read when the step is applied.
#include "core/arch.hpp"
#include "core/error.hpp"
#include "core/recipe.hpp"
#include "core/units.hpp"
#include "ext/package.hpp"
#include "steps/step.hpp"

#include <cerrno>
#include <regex>
#include <sys/stat.h>

namespace ib {

namespace {

constexpr const char* k_unit = "containerd.service";
constexpr const char* k_unit_path = "/usr/local/lib/systemd/system/containerd.service";

// The unit containerd upstream ships beside its release tarball, for the binary in /usr/local/bin.
constexpr const char* k_unit_text = R"([Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
)";

struct Source {
    std::string host; // resolved host path
    bool deb = false;
    uint64_t size = 0;
};

// One path the step installs, and where it came from (for messages).
struct Item {
    std::string dest;
    package::PackageFile file;
    std::string from;
};

class Containerd final : public Step {
public:
    std::string describe() const override {
        std::string s = "install containerd" + (m_version.empty() ? "" : " " + m_version) + " from " +
                        m_containerd.host + ", runc from " + m_runc.host;
        if (m_cni) s += ", CNI plugins from " + m_cni->host + " into /opt/cni/bin";
        s += "; enable containerd.service";
        if (m_config)
            s += std::string("; write /etc/containerd/config.toml (version ") + (m_major == 1 ? "2" : "3") +
                 ", SystemdCgroup = " + (m_systemd_cgroup ? "true" : "false") + ")";
        return s;
    }

    void apply(Tree& tree, const StepApplyEnv& env) const override {
        // Known before the packages are read: a wrong image fails fast.
        auto image = arch::image_arch(tree);
        if (!image)
            throw Error("cannot tell the image's architecture: /var/lib/dpkg/status names no base-files "
                        "architecture and /bin/sh is not an ELF binary");
        std::vector<Item> items;
        if (m_containerd.deb)
            add_deb(m_containerd.host, "containerd", items);
        else
            add_release_tarball(items);
        if (m_runc.deb)
            add_deb(m_runc.host, "runc", items);
        else
            items.push_back(
                {"/usr/local/sbin/runc", executable(make_host_file(m_runc.host, m_runc.size)), m_runc.host});
        if (m_cni) add_cni(items);
        check_arch(items, *image);

        for (const auto& item : items) install(tree, item, env.now);
        if (!m_containerd.deb) tree.put(k_unit_path, Entry::file(make_blob(k_unit_text), 0644, env.now));
        units::enable(tree, k_unit);
        if (m_config) tree.put("/etc/containerd/config.toml", Entry::file(make_blob(config_text()), 0644, env.now));
    }

    Source m_containerd, m_runc;
    std::optional<Source> m_cni;
    std::string m_version; // "1.7", or "" when not known (config: none)
    int m_major = 1;
    bool m_config = true;
    bool m_systemd_cgroup = true;

private:
    static package::PackageFile executable(ContentRef content) {
        package::PackageFile f;
        f.perm = 0755;
        f.content = std::move(content);
        return f;
    }

    // containerd 1.x reads config version 2 (CRI under io.containerd.grpc.v1.cri); 2.x introduced
    // version 3, where the runtime part of CRI is its own plugin, io.containerd.cri.v1.runtime.
    std::string config_text() const {
        std::string cgroup = std::string("  SystemdCgroup = ") + (m_systemd_cgroup ? "true" : "false") + "\n";
        if (m_major == 1)
            return "version = 2\n\n"
                   "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
                   "  runtime_type = \"io.containerd.runc.v2\"\n\n"
                   "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n" +
                   cgroup;
        return "version = 3\n\n"
               "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
               "  runtime_type = 'io.containerd.runc.v2'\n\n"
               "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n" +
               cgroup;
    }

    void add_release_tarball(std::vector<Item>& items) const {
        auto files = package::read_release_tarball(m_containerd.host).value_or_throw();
        bool found = false;
        for (auto& f : files) {
            if (f.type != FileType::Regular || path::parent(f.path) != "/bin") continue;
            found = found || f.path == "/bin/containerd";
            items.push_back(
                {"/usr/local/bin/" + std::string(path::name(f.path)), executable(f.content), m_containerd.host});
        }
        if (!found)
            throw Error("tarball '" + m_containerd.host +
                        "' has no bin/containerd: is it containerd's release tarball?");
    }

    // Everything in data.tar, where the package put it. `binary` must be among the files, and for
    // containerd the package must ship the unit too.
    static void add_deb(const std::string& host, const std::string& binary, std::vector<Item>& items) {
        auto deb = package::read_deb(host).value_or_throw();
        bool has_binary = false, has_unit = false;
        for (auto& f : deb.files) {
            has_binary = has_binary || (f.type != FileType::Directory && path::name(f.path) == binary);
            has_unit = has_unit || (path::name(f.path) == k_unit && path::name(path::parent(f.path)) == "system");
            items.push_back({f.path, std::move(f), host});
        }
        if (!has_binary) throw Error("package '" + host + "' has no file named '" + binary + "'");
        if (binary == "containerd" && !has_unit) throw Error("package '" + host + "' ships no " + std::string(k_unit));
    }

    void add_cni(std::vector<Item>& items) const {
        auto files = package::read_release_tarball(m_cni->host).value_or_throw();
        for (auto& f : files)
            if (f.type == FileType::Regular)
                items.push_back(
                    {"/opt/cni/bin/" + std::string(path::name(f.path)), executable(f.content), m_cni->host});
    }

    static void check_arch(const std::vector<Item>& items, const arch::ImageArch& image) {
        std::string first;
        size_t wrong = 0;
        for (const auto& item : items) {
            if (item.file.type != FileType::Regular || !item.file.content) continue;
            auto machine = arch::elf_machine(*item.file.content);
            if (!machine || *machine == image.machine) continue; // scripts and text run anywhere
            if (wrong++ == 0)
                first = "'" + item.dest + "' (from '" + item.from + "') is " + arch::machine_name(*machine) +
                        " but the image is " + image.name;
        }
        if (wrong > 1) first += " (and " + std::to_string(wrong - 1) + " more)";
        if (wrong) throw Error(first);
    }

    // dpkg's way: existing folders (or links to folders, as /lib in a merged-/usr image) are kept.
    static void install(Tree& tree, const Item& item, Timestamp now) {
        const auto& f = item.file;
        switch (f.type) {
        case FileType::Directory: {
            const Entry* e = tree.find(item.dest);
            if (e && e->is_dir()) return;
            tree.put(item.dest, Entry::directory(f.perm, now, f.uid, f.gid));
            return;
        }
        case FileType::Symlink: tree.put(item.dest, Entry::symlink(f.link, now, f.uid, f.gid)); return;
        default: tree.put(item.dest, Entry::file(f.content, f.perm, now, f.uid, f.gid)); return;
        }
    }
};

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "1.7.20" from "containerd-1.7.20-linux-arm64.tar.gz", "containerd_1.6.20~ds1-1_arm64.deb" or
// "containerd.io_1.7.20-1_arm64.deb": the first MAJOR.MINOR after a '-', '_' or 'v'.
std::optional<std::string> version_in_name(const std::string& name) {
    static const std::regex k_re("(^|[-_v])([0-9]{1,6}\\.[0-9]{1,6})");
    std::smatch m;
    if (std::regex_search(name, m, k_re)) return m[2].str();
    return std::nullopt;
}

// "1.7" from a Debian version "1:1.7.24~ds1-1" (epoch dropped).
std::optional<std::string> version_of_deb(const std::string& version) {
    static const std::regex k_re("^([0-9]+:)?([0-9]{1,6}\\.[0-9]{1,6})");
    std::smatch m;
    if (std::regex_search(version, m, k_re)) return m[2].str();
    return std::nullopt;
}

// A host file option: resolved and checked to be a regular file. nullopt after reporting.
std::optional<Source> host_file(MapReader& m, const Doc& options, const std::string& key, bool required,
                                StepParseEnv& env) {
    auto value = m.string(key, required);
    if (!value) return std::nullopt;
    const Doc& d = *options.find(key);
    Source s;
    s.host = host_path(d.mark(), *value);
    struct stat st {};
    if (::stat(s.host.c_str(), &st) != 0) {
        env.diag.error(d.mark(), env.what + ": " + errno_message(key + " '" + s.host + "'", errno));
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        env.diag.error(d.mark(), env.what + ": " + key + " '" + s.host + "' is not a file");
        return std::nullopt;
    }
    s.size = static_cast<uint64_t>(st.st_size);
    s.deb = ends_with(s.host, ".deb");
    return s;
}

} // namespace

std::unique_ptr<Step> parse_containerd(const Doc& options, StepParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto step = std::make_unique<Containerd>();
    auto containerd = host_file(m, options, "containerd", true, env);
    auto runc = host_file(m, options, "runc", true, env);
    step->m_cni = host_file(m, options, "cni", false, env);
    auto version = m.string("version");
    auto config = m.string("config");
    step->m_systemd_cgroup = m.boolean("systemd_cgroup").value_or(true);
    m.finish();
    if (step->m_cni && step->m_cni->deb)
        env.diag.error(options.find("cni")->mark(),
                       env.what + ": cni '" + step->m_cni->host + "' must be the plugins' release tarball, not a .deb");

    if (config) {
        if (*config != "default" && *config != "none")
            env.diag.error(options.find("config")->mark(),
                           env.what + ": config '" + *config + "' must be 'default' or 'none'");
        step->m_config = *config != "none";
    }

    // The config format follows the version: given, else the .deb's control, else the file name.
    const Doc* version_doc = options.find("version");
    if (version) {
        static const std::regex k_re("^[0-9]{1,6}(\\.[0-9]{1,6}){0,2}$");
        if (!std::regex_match(*version, k_re)) {
            env.diag.error(version_doc->mark(),
                           env.what + ": version '" + *version + "' is not a version such as \"1.7\" or \"2.0\"");
            version.reset();
        }
    }
    if (containerd && containerd->deb) {
        auto control = package::read_deb_control(containerd->host);
        if (!control) {
            env.diag.error(options.find("containerd")->mark(), env.what + ": " + control.error());
            containerd.reset(); // one message is enough: no guessing at its version below
        } else if (!version) {
            version = version_of_deb(control.value().version);
        }
    }
    if (runc && runc->deb) {
        if (auto control = package::read_deb_control(runc->host); !control)
            env.diag.error(options.find("runc")->mark(), env.what + ": " + control.error());
    } else if (runc) {
        // A release binary: catch a wrong download (an HTML error page, a tarball) now.
        std::optional<uint16_t> machine;
        try {
            machine = arch::elf_machine(*make_host_file(runc->host, runc->size));
        } catch (const Error&) {
        }
        if (!machine)
            env.diag.error(options.find("runc")->mark(),
                           env.what + ": runc '" + runc->host + "' is neither an ELF binary nor a .deb");
    }
    if (containerd && !version) version = version_in_name(std::string(path::name(containerd->host)));
    if (version) {
        step->m_version = *version;
        step->m_major = std::stoi(*version);
        if (step->m_config && step->m_major != 1 && step->m_major != 2)
            env.diag.error(version_doc ? version_doc->mark() : options.find("containerd")->mark(),
                           env.what + ": containerd " + *version +
                               " has no known config.toml format; use config: none");
    } else if (containerd && step->m_config && !version_doc) {
        env.diag.error(options.find("containerd")->mark(),
                       env.what + ": cannot tell the containerd version of '" + containerd->host +
                           "'; give 'version' (\"1.7\", \"2.0\") to pick the config.toml format, or config: none");
    }
    if (!containerd || !runc) return nullptr;
    step->m_containerd = *containerd;
    step->m_runc = *runc;
    return step;
}

} // namespace ib
