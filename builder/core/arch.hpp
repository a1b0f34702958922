// CPU architectures of binaries and of images, so that steps installing binaries can refuse ones the
// image cannot run. Binaries are told apart by the ELF header's e_machine field.
#pragma once

#include "core/content.hpp"
#include "core/tree.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ib::arch {

inline constexpr uint16_t k_i386 = 0x03;
inline constexpr uint16_t k_arm = 0x28;
inline constexpr uint16_t k_x86_64 = 0x3E;
inline constexpr uint16_t k_aarch64 = 0xB7;

// e_machine of an ELF file (offset 18, in the byte order its header says); nullopt when the content
// is not ELF (a script, text) or too short to hold the header.
std::optional<uint16_t> elf_machine(const Content& content);

// "arm64", "arm", "x86-64", "i386", ... or "ELF machine 0x1234" for the ones not named here.
std::string machine_name(uint16_t machine);

// The e_machine a Debian architecture's binaries have: "arm64" -> 0xB7, "armhf" and "armel" -> 0x28.
std::optional<uint16_t> machine_of_dpkg(std::string_view dpkg_arch);

struct ImageArch {
    uint16_t machine = 0;
    std::string name; // the dpkg name ("arm64", "armhf") or, from /bin/sh, machine_name()
};

// The image's architecture: the `Architecture:` of package base-files in /var/lib/dpkg/status or,
// failing that, the ELF header of /bin/sh (links resolved inside the tree). nullopt when neither says.
std::optional<ImageArch> image_arch(const Tree& tree);

} // namespace ib::arch
