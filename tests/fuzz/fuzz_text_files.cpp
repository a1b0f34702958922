// The text-file editors: the first byte picks a file of the image, the rest is its text; then the
// steps that edit it run on it (users: passwd/group/shadow/gshadow; cmdline.txt; config.txt;
// sshd_config; fstab; units; hosts; locale files), plus the parsers they use directly.
#include "core/error.hpp"
#include "core/openssh.hpp"
#include "core/passwd.hpp"
#include "core/tree.hpp"
#include "core/units.hpp"
#include "ext/yaml.hpp"
#include "steps/step.hpp"

#include <cstdlib>

namespace {

using namespace ib;

struct Target {
    const char* path;
    std::vector<const char*> steps; // each a one-entry YAML map {TYPE: OPTIONS}
};

const std::vector<Target>& targets() {
    static const std::vector<Target> t = {
        {"/etc/passwd", {"users: [{name: pi, groups: [sudo, adm], sudo: true}, {name: root, shell: /bin/sh}]",
                         "ssh: {authorized_keys: {pi: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x']}}"}},
        {"/etc/group", {"users: [{name: pi, groups: [sudo, adm, video], primary_group: pi}]"}},
        {"/etc/shadow", {"users: [{name: pi, password_hash: '!'}, {name: root, password_hash: '*'}]"}},
        {"/etc/gshadow", {"users: [{name: pi, groups: [sudo]}]"}},
        {"/boot/firmware/cmdline.txt", {"cmdline: {remove: [quiet, console=tty1], set: {console: ttyAMA0}, add: [net.ifnames=0], cgroups: true}"}},
        {"/boot/firmware/config.txt", {"config_txt: {set: {arm_64bit: 1, dtoverlay: [vc4-kms-v3d, disable-bt]}}",
                                       "config_txt: {section: pi4, set: {arm_boost: 1}, lines: ['dtparam=x=1']}"}},
        {"/etc/ssh/sshd_config", {"ssh: {password_authentication: false, permit_root_login: 'no'}"}},
        {"/etc/fstab", {"kubernetes_prereqs"}},
        {"/lib/systemd/system/x.service", {"systemd: {enable: [x.service, y.service], mask: [z.service]}",
                                           "systemd: {disable: [x.service], unmask: [z.service]}"}},
        {"/etc/hosts", {"hostname: {name: node-1, domain: cluster.lan}"}},
        {"/etc/locale.gen", {"locale: en_GB.UTF-8"}},
        {"/etc/default/locale", {"locale: en_GB.UTF-8"}},
    };
    return t;
}

Tree base_tree() {
    Tree t;
    t.write_file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n");
    t.write_file("/etc/group", "root:x:0:\nsudo:x:27:\nadm:x:4:\nvideo:x:44:\n");
    t.write_file("/etc/shadow", "root:*:19000:0:99999:7:::\n", 0640);
    t.write_file("/etc/gshadow", "root:*::\nsudo:*::\nadm:*::\nvideo:*::\n", 0640);
    t.write_file("/etc/fstab", "proc /proc proc defaults 0 0\n/swap none swap sw 0 0\n");
    t.write_file("/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 raspberrypi\n");
    t.write_file("/etc/hostname", "raspberrypi\n");
    t.write_file("/etc/locale.gen", "# en_GB.UTF-8 UTF-8\n");
    t.write_file("/boot/firmware/cmdline.txt", "console=tty1 root=PARTUUID=6c586e13-02 rootwait quiet\n");
    t.write_file("/boot/firmware/config.txt", "[all]\narm_64bit=1\n[pi4]\narm_boost=1\n");
    t.write_file("/boot/firmware/issue.txt", "Raspberry Pi reference\n");
    t.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n");
    t.write_file("/lib/systemd/system/ssh.service", "[Unit]\n[Service]\nExecStart=/usr/sbin/sshd\n[Install]\nWantedBy=multi-user.target\n");
    t.write_file("/lib/systemd/system/x.service", "[Install]\nWantedBy=multi-user.target\nAlso=y.service\n");
    t.write_file("/lib/systemd/system/y.service", "[Install]\nRequiredBy=x.service\nAlias=yy.service\n");
    t.write_file("/lib/systemd/system/z.service", "[Service]\n");
    t.write_file("/usr/share/zoneinfo/UTC", "TZif");
    return t;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    ::setenv("IMGBUILD_CLOUD_INIT", "", 1);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const Target& target = targets()[data[0] % targets().size()];
    std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

    // The parsers the editors use, on the text as it is.
    passwd::Table table(text);
    for (size_t i = 0; i < table.size(); ++i) (void)table.fields(i);
    (void)table.find("pi");
    (void)table.text();
    (void)passwd::members(text);
    (void)units::read_install(text);
    (void)openssh::parse_public_key(text);

    // Parsed once: the steps are fixed, only the file they edit changes.
    static const std::vector<std::vector<std::unique_ptr<Step>>> steps = [] {
        std::vector<std::vector<std::unique_ptr<Step>>> all;
        for (const auto& t : targets()) {
            all.emplace_back();
            for (const char* yaml : t.steps) {
                Diagnostics diag;
                Doc doc = yaml::parse(yaml, "fuzz.yaml", diag);
                std::string type = doc.is_map() ? doc.entries().front().key : doc.str();
                const StepType* st = find_step_type(type);
                if (!st) std::abort(); // a mistake in this table, not a finding
                StepParseEnv env{diag, "step '" + type + "'", doc.mark()};
                auto step = st->parse(doc.is_map() ? doc.entries().front().value : Doc::null(doc.mark()), env);
                if (!step || diag.has_errors()) std::abort();
                all.back().push_back(std::move(step));
            }
        }
        return all;
    }();
    static const Tree base = base_tree();
    Tree tree = base;
    tree.write_file(target.path, text);
    for (const auto& step : steps[static_cast<size_t>(&target - targets().data())]) {
        try {
            step->apply(tree, StepApplyEnv{{1700000000, 0}});
        } catch (const Error&) {
        }
    }
    return 0;
}
