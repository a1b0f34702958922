// Checks of names and addresses that recipes carry; each returns the reason it fails, or nullopt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ib::validate {

// RFC 1123 host name: labels of [a-z0-9-], 1..63 long, not starting or ending with '-', 253 in all.
std::optional<std::string> hostname(std::string_view s);
// "b8:27:eb:12:34:56" or "b8-27-eb-12-34-56", any case.
std::optional<std::string> mac(std::string_view s);
// Lower-case, colon-separated form of a valid MAC.
std::string normalise_mac(std::string_view s);
// A Raspberry Pi serial: 8 hex digits (as in /proc/cpuinfo, last 8 digits).
std::optional<std::string> serial(std::string_view s);
// Dotted-quad IPv4, optionally with "/prefix" (0..32) when `allow_prefix`.
std::optional<std::string> ipv4(std::string_view s, bool allow_prefix);
// A user or group name as useradd accepts it.
std::optional<std::string> account_name(std::string_view s);

// Valid UTF-8: no stray continuation bytes, overlong forms, surrogates or code points past U+10FFFF.
bool utf8(std::string_view s);

// A value that lands in one line of a file imgbuild writes (dnsmasq.conf, passwd, cmdline.txt, ...):
// valid UTF-8 without NUL, line breaks or any other control character, tab included unless
// `allow_tab`. Whatever the target format, such a byte would end the line early, start a new one, or
// be cut at by C string handling.
std::optional<std::string> one_line(std::string_view s, bool allow_tab = false);

// one_line, and none of the characters in `forbidden` (described by the first one found).
std::optional<std::string> one_line_without(std::string_view s, std::string_view forbidden);

// `s` for an error message, on one line: line breaks, tabs and other control bytes as C escapes
// ("\n", "\x00"), and when `s` is not valid UTF-8 every byte above 0x7F as "\xNN".
std::string shown(std::string_view s);

// A name for a recipe variable ({{name}}, --set NAME=VALUE): a letter or '_', then letters, digits,
// '_' or '-'.
std::optional<std::string> var_name(std::string_view s);

// The highest uid or gid a recipe may give: (uid_t)-1 is chown(2)'s "leave unchanged", so tar (which
// stores it) and a folder (where chown skips it) would disagree.
inline constexpr uint32_t k_max_id = 4294967294u;

// An owner or group as `files` takes it: a number 0..k_max_id, or a name as the image's
// /etc/passwd or /etc/group may hold it (letters of either case, digits, '_', '-', '.', a final '$';
// not starting with '-' or a digit; at most 32). Whether the name exists is the build's to check.
std::optional<std::string> owner(std::string_view s);

// The latest build time a recipe (epoch:) or SOURCE_DATE_EPOCH may give, 2106-02-07T06:28:15Z: the
// largest unsigned 32-bit count of seconds, which every output stores (pax and ustar tar headers,
// ext4 with its extra epoch bits up to 2446; FAT clamps to its own 1980..2107).
inline constexpr int64_t k_max_epoch = 4294967295;

} // namespace ib::validate
