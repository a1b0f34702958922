#include "ext/guestfs.hpp"

#ifdef IMGBUILD_HAVE_GUESTFS

#include "core/content.hpp"
#include "core/log.hpp"
#include "ext/archive.hpp"

#include <guestfs.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <optional>
#include <thread>
#include <unistd.h>
#include <vector>

namespace ib::guestfs {

namespace {

struct Handle {
    guestfs_h* g = guestfs_create();
    ~Handle() {
        if (g) guestfs_close(g);
    }
};

std::vector<std::string> take(char** list) {
    std::vector<std::string> out;
    if (!list) return out;
    for (char** p = list; *p; ++p) {
        out.emplace_back(*p);
        free(*p);
    }
    free(list);
    return out;
}

// Where /dev/kvm exists but KVM does not work (nested virtualisation without the features QEMU asks
// for), QEMU either fails at once ("failed to set MSR 0x10a") or hangs after the BIOS with the guest
// kernel never printing a line. TCG is slower but works everywhere, so a KVM launch that fails, or
// whose console stays silent this long, is retried with TCG. A working KVM appliance prints its
// kernel's messages within a second or two of the BIOS.
constexpr auto k_kvm_silence = std::chrono::seconds(30);

using Clock = std::chrono::steady_clock;

bool tcg_forced(guestfs_h* g) {
    for (const auto& s : take(guestfs_get_backend_settings(g)))
        if (s == "force_tcg" || s.rfind("force_tcg=", 0) == 0) return true;
    return false;
}

// QEMU processes this process started (libguestfs's direct backend forks and executes it in the
// launching thread): children of any of our threads whose program is qemu-system-*.
std::vector<pid_t> qemu_children() {
    std::vector<pid_t> out;
    DIR* tasks = ::opendir("/proc/self/task");
    if (!tasks) return out;
    while (dirent* t = ::readdir(tasks)) {
        if (t->d_name[0] == '.') continue;
        std::ifstream children(std::string("/proc/self/task/") + t->d_name + "/children");
        pid_t pid = 0;
        while (children >> pid) {
            char exe[4096];
            ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), exe, sizeof exe - 1);
            if (n <= 0) continue;
            std::string path(exe, static_cast<size_t>(n));
            if (path.substr(path.rfind('/') + 1).rfind("qemu-system", 0) == 0) out.push_back(pid);
        }
    }
    ::closedir(tasks);
    return out;
}

// Watches one launch: the console's messages arrive as appliance events; a QEMU child whose console
// has said nothing for k_kvm_silence is killed, which makes guestfs_launch fail.
class LaunchWatch {
public:
    explicit LaunchWatch(guestfs_h* g) : m_g(g) {
        m_event = guestfs_set_event_callback(g, &LaunchWatch::on_event,
                                             GUESTFS_EVENT_APPLIANCE | GUESTFS_EVENT_LIBRARY, 0, this);
        m_thread = std::thread([this] { watch(); });
    }
    ~LaunchWatch() { stop(); }
    LaunchWatch(const LaunchWatch&) = delete;
    LaunchWatch& operator=(const LaunchWatch&) = delete;

    void stop() {
        m_done = true;
        if (m_thread.joinable()) m_thread.join();
        if (m_event >= 0) guestfs_delete_event_callback(m_g, m_event);
        m_event = -1;
    }
    bool killed() const { return m_killed; }
    // After stop(): the console's last line with words in it, escape sequences left out.
    std::string tail() const {
        std::string last, line;
        auto end_line = [&] {
            while (!line.empty() && line.back() == ' ')
                line.pop_back();
            if (std::any_of(line.begin(), line.end(), [](unsigned char c) { return std::isalpha(c); }))
                last = line;
            line.clear();
        };
        for (size_t i = 0; i < m_console.size(); ++i) {
            char c = m_console[i];
            if (c == '\x1b') { // ESC c, or ESC [ parameters and a final letter
                if (i + 1 < m_console.size() && m_console[i + 1] == '[')
                    for (i += 2;
                         i < m_console.size() && !std::isalpha(static_cast<unsigned char>(m_console[i]));
                         ++i) {
                    }
                else
                    ++i;
            } else if (c == '\n' || c == '\r') {
                end_line();
            } else if (static_cast<unsigned char>(c) >= ' ') {
                line += c;
            }
        }
        end_line();
        return last;
    }

private:
    static void on_event(guestfs_h*, void* self, uint64_t event, int, int, const char* buf, size_t len,
                         const uint64_t*, size_t) {
        auto* w = static_cast<LaunchWatch*>(self);
        if (event != GUESTFS_EVENT_APPLIANCE) return; // library messages: only so they are not printed
        w->m_last_output = Clock::now().time_since_epoch().count();
        // The console comes in pieces, not lines: keep its last few hundred bytes.
        w->m_console.append(buf, len);
        if (w->m_console.size() > 4096) w->m_console.erase(0, w->m_console.size() - 1024);
    }

    void watch() {
        std::optional<Clock::time_point> started;
        while (!m_done) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            auto qemu = qemu_children();
            if (qemu.empty()) continue;
            auto now = Clock::now();
            if (!started) started = now;
            Clock::time_point last{Clock::duration(m_last_output.load())};
            if (now - std::max(*started, last) < k_kvm_silence) continue;
            m_killed = true;
            for (pid_t pid : qemu)
                ::kill(pid, SIGKILL);
            return;
        }
    }

    guestfs_h* m_g;
    std::thread m_thread;
    std::atomic<bool> m_done{false}, m_killed{false};
    std::atomic<Clock::rep> m_last_output{0};
    std::string m_console; // written by the launching thread only
    int m_event = -1;
};

} // namespace

bool available() { return true; }

Result<void> read(const std::string& image, const std::string& format, Tree& tree, std::string& boot_mount) {
    std::optional<Handle> h;
    auto error = [&](const std::string& what) {
        const char* e = guestfs_last_error(h->g);
        return fail("libguestfs: " + what + ": " + (e ? e : "unknown error"));
    };
    // One handle per attempt: libguestfs cannot launch a handle again after a failed launch.
    auto prepare = [&](bool force_tcg) -> Result<void> {
        h.emplace();
        if (!h->g) return fail("libguestfs: cannot create a handle");
        guestfs_set_error_handler(h->g, nullptr, nullptr); // errors are reported through our messages
        if (force_tcg && guestfs_set_backend_setting(h->g, "force_tcg", "1") != 0)
            return error("set force_tcg");
        int r = format.empty()
                    ? guestfs_add_drive_opts(h->g, image.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1)
                    : guestfs_add_drive_opts(h->g, image.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                                             GUESTFS_ADD_DRIVE_OPTS_FORMAT, format.c_str(), -1);
        if (r != 0) return error("add '" + image + "'");
        return {};
    };
    if (auto p = prepare(false); !p.ok()) return p;
    log::info("starting the libguestfs appliance for '" + image + "' (this takes a while)");
    // KVM may be tried (the user did not force TCG, and /dev/kvm is ours to open): then a failed or
    // silent launch is retried once with TCG.
    bool may_retry = !tcg_forced(h->g) && ::access("/dev/kvm", R_OK | W_OK) == 0;
    int launched;
    std::string first_error, tail;
    bool stalled = false;
    {
        std::optional<LaunchWatch> watch;
        if (may_retry) {
            guestfs_set_verbose(h->g, 1); // the console's lines, to tell a silent appliance from a slow one
            watch.emplace(h->g);
        }
        launched = guestfs_launch(h->g);
        if (watch) {
            watch->stop();
            stalled = watch->killed();
            tail = watch->tail();
        }
        if (launched != 0) {
            const char* e = guestfs_last_error(h->g);
            first_error = e ? e : "unknown error";
        }
        guestfs_set_verbose(h->g, 0);
    }
    if (launched != 0 && may_retry) {
        std::string why = stalled ? "its console said nothing for " + std::to_string(k_kvm_silence.count()) +
                                        " s" + (tail.empty() ? "" : " after '" + tail + "'")
                                  : first_error;
        log::warn("libguestfs: the appliance did not start with KVM (" + why +
                  "); retrying with software emulation (backend setting force_tcg), which is slower");
        if (auto p = prepare(true); !p.ok()) return p;
        launched = guestfs_launch(h->g);
    }
    if (launched != 0) return error("launch the appliance");
    auto roots = take(guestfs_inspect_os(h->g));
    std::vector<std::pair<std::string, std::string>> mounts; // (mount point, device)
    if (!roots.empty()) {
        auto flat = take(guestfs_inspect_get_mountpoints(h->g, roots[0].c_str()));
        for (size_t i = 0; i + 1 < flat.size(); i += 2) mounts.emplace_back(flat[i], flat[i + 1]);
    } else {
        // Inspection recognises only complete OS installs: a bare root filesystem is still a root.
        auto flat = take(guestfs_list_filesystems(h->g)); // (device, type) pairs
        for (size_t i = 0; i + 1 < flat.size() && mounts.empty(); i += 2) {
            const std::string& type = flat[i + 1];
            if (type == "btrfs" || type == "xfs" || type.rfind("ext", 0) == 0) mounts.emplace_back("/", flat[i]);
        }
        if (mounts.empty()) return fail("libguestfs: no operating system or Linux filesystem found in '" + image + "'");
    }
    // Shortest mount point first, so that / comes before /boot.
    std::sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) { return a.first.size() < b.first.size(); });
    for (const auto& [mp, dev] : mounts) {
        if (guestfs_mount_ro(h->g, dev.c_str(), mp.c_str()) != 0) return error("mount " + dev + " at " + mp);
        if (mp == "/boot/firmware" || mp == "/boot") boot_mount = mp;
    }
    char tmpl[] = "/tmp/imgbuild-guestfs-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return fail(errno_message("libguestfs: temporary tarball", errno));
    ::close(fd);
    std::string tar = tmpl;
    int r = guestfs_tar_out_opts(h->g, "/", tar.c_str(), GUESTFS_TAR_OUT_OPTS_NUMERICOWNER, 1, GUESTFS_TAR_OUT_OPTS_XATTRS,
                                 1, GUESTFS_TAR_OUT_OPTS_ACLS, 1, -1);
    if (r != 0) {
        ::unlink(tar.c_str());
        return error("copy the files out");
    }
    auto result = archive::read_tarball(tar, tree);
    ::unlink(tar.c_str()); // the spool holds the contents now
    return result;
}

} // namespace ib::guestfs

#else

namespace ib::guestfs {
bool available() {
    return false;
}
Result<void> read(const std::string&, const std::string&, Tree&, std::string&) {
    return fail("this imgbuild was built without libguestfs (install libguestfs-dev and rebuild)");
}
} // namespace ib::guestfs

#endif
