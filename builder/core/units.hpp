// systemd units in a tree: found where systemd looks, enabled, disabled and masked as `systemctl`
// would, by making and removing symlinks under /etc/systemd/system. Nothing runs.
#pragma once

#include "core/tree.hpp"

#include <optional>
#include <string>
#include <vector>

namespace ib::units {

// The unit file's path in the tree: /etc/systemd/system, /usr/local/lib/systemd/system,
// /usr/lib/systemd/system, /lib/systemd/system, in that order. For "foo@bar.service" the template
// "foo@.service" is found. nullopt when there is none.
std::optional<std::string> find(const Tree& tree, const std::string& unit);

// The [Install] section of a unit file.
struct Install {
    std::vector<std::string> wanted_by, required_by, alias, also;
    std::string default_instance;
};
Install read_install(const std::string& unit_text);

// Enables `unit` (and what its Also= names): a link in /etc/systemd/system/TARGET.wants/ (or
// .requires/) for every WantedBy= (RequiredBy=), one per Alias=. Throws when the unit is missing, or
// has no [Install] section and is not static (`systemctl enable` says the same).
void enable(Tree& tree, const std::string& unit);
// Removes every link that enable() (or systemctl) made for `unit`; a missing unit is not an error.
void disable(Tree& tree, const std::string& unit);
// /etc/systemd/system/UNIT -> /dev/null, after disabling it.
void mask(Tree& tree, const std::string& unit);
// Removes the /etc/systemd/system/UNIT -> /dev/null link that mask() made; anything else there (a
// local unit file, a link to a unit) stays. Returns whether the unit was masked.
bool unmask(Tree& tree, const std::string& unit);
// Whether /etc/systemd/system/UNIT is a link to /dev/null.
bool is_masked(const Tree& tree, const std::string& unit);
// Whether some .wants/ or .requires/ folder under /etc/systemd/system links to `unit`.
bool is_enabled(const Tree& tree, const std::string& unit);

} // namespace ib::units
