// Checks of names and addresses that recipes carry; each returns the reason it fails, or nullopt.
#pragma once

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

} // namespace ib::validate
