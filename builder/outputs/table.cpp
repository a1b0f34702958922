#include "core/path.hpp"
#include "core/validate.hpp"
#include "outputs/output.hpp"

#include <array>

namespace ib {

std::unique_ptr<Output> parse_dir_output(const Doc&, OutputParseEnv&);
std::unique_ptr<Output> parse_netboot_output(const Doc&, OutputParseEnv&);
std::unique_ptr<Output> parse_sdimage_output(const Doc&, OutputParseEnv&);
std::unique_ptr<Output> parse_tar_output(const Doc&, OutputParseEnv&);

namespace {
// Adding an output: one file in outputs/ and one line here, in name order.
constexpr std::array k_outputs = {
    OutputType{"dir", "the root filesystem as a folder, with real owners (needs root when they differ)", parse_dir_output},
    OutputType{"netboot", "diskless nodes: per-node TFTP folders and NFS roots, and the server's dnsmasq and exports (needs root)",
               parse_netboot_output, true},
    OutputType{"sdimage", "a disk image to flash: MBR or GPT, FAT boot partition, ext4 root (.img, with a .bmap)", parse_sdimage_output},
    OutputType{"tar", "the root filesystem as a tarball (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2)", parse_tar_output},
};
} // namespace

std::span<const OutputType> output_types() { return k_outputs; }

const OutputType* find_output_type(std::string_view name) {
    for (const auto& t : k_outputs)
        if (t.name == name) return &t;
    return nullptr;
}

std::optional<std::string> output_path(MapReader& m, const Doc& options, OutputParseEnv& env) {
    auto p = m.string("path", true);
    if (!p) return std::nullopt;
    const Mark& mark = options.find("path")->mark();
    // Each output's path is a line of SHA256SUMS.
    if (auto why = validate::one_line(*p)) {
        env.diag.error(mark, env.what + ": path '" + validate::shown(*p) + "' " + *why);
        return std::nullopt;
    }
    if (p->empty() || (*p)[0] == '/') {
        env.diag.error(mark, env.what + ": path '" + *p + "' must be relative to the output folder (--out)");
        return std::nullopt;
    }
    for (auto part : path::split(*p)) {
        if (part == "..") {
            env.diag.error(mark, env.what + ": path '" + *p + "' must stay inside the output folder (no '..')");
            return std::nullopt;
        }
    }
    std::string normal = path::normalise(*p).substr(1);
    if (normal.empty()) {
        env.diag.error(mark, env.what + ": path '" + *p + "' names the output folder itself");
        return std::nullopt;
    }
    return normal;
}

} // namespace ib
