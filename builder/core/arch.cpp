#include "core/arch.hpp"

#include <array>
#include <cstdio>
#include <sstream>

namespace ib::arch {

namespace {

struct Known {
    uint16_t machine;
    std::string_view name;
};
constexpr std::array k_machines = {
    Known{k_i386, "i386"},     Known{k_arm, "arm"},  Known{k_x86_64, "x86-64"},
    Known{k_aarch64, "arm64"}, Known{0x08, "mips"},  Known{0x15, "ppc64"},
    Known{0x16, "s390"},       Known{0xF3, "riscv"}, Known{0x102, "loongarch"},
};

struct DpkgArch {
    std::string_view dpkg;
    uint16_t machine;
};
constexpr std::array k_dpkg = {
    DpkgArch{"amd64", k_x86_64}, DpkgArch{"arm64", k_aarch64}, DpkgArch{"armhf", k_arm},  DpkgArch{"armel", k_arm},
    DpkgArch{"i386", k_i386},    DpkgArch{"riscv64", 0xF3},    DpkgArch{"ppc64el", 0x15}, DpkgArch{"s390x", 0x16},
    DpkgArch{"mips64el", 0x08},  DpkgArch{"loong64", 0x102},
};

// Architecture: of the base-files paragraph. base-files is Essential and architecture-specific, so
// it says what the image was built for even when foreign-architecture packages are installed.
std::optional<std::string> base_files_arch(const std::string& status) {
    std::istringstream in(status);
    std::string line, package, architecture;
    auto done = [&]() -> std::optional<std::string> {
        if (package == "base-files" && !architecture.empty()) return architecture;
        package.clear();
        architecture.clear();
        return std::nullopt;
    };
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            if (auto a = done()) return a;
            continue;
        }
        auto value = [&line](size_t n) {
            std::string v = line.substr(n);
            v.erase(0, v.find_first_not_of(" \t"));
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
            return v;
        };
        if (line.rfind("Package:", 0) == 0)
            package = value(8);
        else if (line.rfind("Architecture:", 0) == 0)
            architecture = value(13);
    }
    return done();
}

} // namespace

std::optional<uint16_t> elf_machine(const Content& content) {
    if (content.size() < 20) return std::nullopt;
    unsigned char h[20];
    content.read(0, reinterpret_cast<char*>(h), sizeof h);
    if (h[0] != 0x7F || h[1] != 'E' || h[2] != 'L' || h[3] != 'F') return std::nullopt;
    // EI_DATA (byte 5): 1 little-endian, 2 big-endian.
    if (h[5] == 2) return static_cast<uint16_t>(h[18] << 8 | h[19]);
    return static_cast<uint16_t>(h[19] << 8 | h[18]);
}

std::string machine_name(uint16_t machine) {
    for (const auto& k : k_machines)
        if (k.machine == machine) return std::string(k.name);
    char buf[32];
    std::snprintf(buf, sizeof buf, "ELF machine 0x%x", machine);
    return buf;
}

std::optional<uint16_t> machine_of_dpkg(std::string_view dpkg_arch) {
    for (const auto& d : k_dpkg)
        if (d.dpkg == dpkg_arch) return d.machine;
    return std::nullopt;
}

std::optional<ImageArch> image_arch(const Tree& tree) {
    const Entry* status = tree.find("/var/lib/dpkg/status");
    if (status && status->type == FileType::Regular) {
        if (auto a = base_files_arch(read_all(status->content)))
            if (auto m = machine_of_dpkg(*a)) return ImageArch{*m, *a};
    }
    const Entry* sh = tree.find("/bin/sh");
    if (sh && sh->type == FileType::Regular && sh->content)
        if (auto m = elf_machine(*sh->content)) return ImageArch{*m, machine_name(*m)};
    return std::nullopt;
}

} // namespace ib::arch
