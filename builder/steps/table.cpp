#include "steps/step.hpp"

#include <array>

namespace ib {

std::unique_ptr<Step> parse_cloud_init(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_cmdline(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_config_txt(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_containerd(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_delete(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_files(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_hostname(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_kubernetes_prereqs(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_locale(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_networkd(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_ssh(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_systemd(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_timezone(const Doc&, StepParseEnv&);
std::unique_ptr<Step> parse_users(const Doc&, StepParseEnv&);

namespace {
// Adding a step: one file in steps/ and one line here, in name order.
constexpr std::array k_steps = {
    StepType{"cloud_init", "write a cloud-init NoCloud seed (user-data, meta-data, network-config)", parse_cloud_init},
    StepType{"cmdline", "edit the kernel command line (cmdline.txt): add, remove or set arguments; cgroups for Kubernetes", parse_cmdline},
    StepType{"config_txt", "set firmware settings and lines in config.txt, per conditional section ([all], [pi4], ...)", parse_config_txt},
    StepType{"containerd", "install containerd, runc and CNI plugins (release files or .debs), enable containerd.service, write config.toml", parse_containerd},
    StepType{"delete", "remove paths (globs allowed) from the image", parse_delete},
    StepType{"files", "copy a host file or folder (an overlay) into the image, or write inline content", parse_files},
    StepType{"hostname", "set /etc/hostname and the 127.0.1.1 line of /etc/hosts", parse_hostname},
    StepType{"kubernetes_prereqs", "kernel modules, sysctls and swap off as kubeadm wants them", parse_kubernetes_prereqs},
    StepType{"locale", "set LANG in /etc/default/locale and enable the locale in /etc/locale.gen", parse_locale},
    StepType{"networkd", "configure interfaces with systemd-networkd (.network files), enable it and resolved, mask other managers", parse_networkd},
    StepType{"ssh", "enable sshd, install authorized keys, set sshd options, regenerate or generate host keys", parse_ssh},
    StepType{"systemd", "enable, disable, mask or unmask systemd units; set the default target", parse_systemd},
    StepType{"timezone", "set /etc/timezone and the /etc/localtime link", parse_timezone},
    StepType{"users", "add or update users and groups in /etc/passwd, shadow, group, gshadow (and Raspberry Pi OS userconf.txt)", parse_users},
};
} // namespace

std::span<const StepType> step_types() { return k_steps; }

const StepType* find_step_type(std::string_view name) {
    for (const auto& t : k_steps)
        if (t.name == name) return &t;
    return nullptr;
}

} // namespace ib
