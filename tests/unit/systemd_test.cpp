#include "core/units.hpp"
#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

Tree with_units() {
    Tree t;
    t.put("/lib", link("usr/lib"));
    t.put("/usr/lib/systemd/system/ssh.service", file("[Service]\n[Install]\nWantedBy=multi-user.target\n"));
    t.put("/usr/lib/systemd/system/bluetooth.service",
          file("[Service]\n[Install]\nWantedBy=bluetooth.target\nAlias=dbus-org.bluez.service\n"));
    t.put("/usr/lib/systemd/system/multi-user.target", file("[Unit]\n"));
    t.put("/usr/lib/systemd/system/graphical.target", file("[Unit]\n"));
    t.put("/usr/lib/systemd/system/ModemManager.service", file("[Install]\nWantedBy=multi-user.target\n"));
    t.put("/etc/systemd/system/bluetooth.target.wants/bluetooth.service",
          link("/lib/systemd/system/bluetooth.service"));
    t.put("/etc/systemd/system/dbus-org.bluez.service", link("/lib/systemd/system/bluetooth.service"));
    t.put("/etc/systemd/system/default.target", link("/lib/systemd/system/graphical.target"));
    t.put("/etc/systemd/system/rpi-eeprom-update.service", link("/dev/null"));
    return t;
}

} // namespace

TEST_CASE("systemd: enable, disable, mask, unmask and the default target", "[step][systemd]") {
    Tree t = with_units();
    const std::string yaml =
        "systemd: {enable: ssh.service, disable: [bluetooth.service], mask: [ModemManager.service], "
        "unmask: [rpi-eeprom-update.service], default_target: multi-user.target}";
    run_step(yaml, t);
    CHECK(t.get("/etc/systemd/system/multi-user.target.wants/ssh.service")->link ==
          "/usr/lib/systemd/system/ssh.service");
    CHECK_FALSE(units::is_enabled(t, "bluetooth.service"));
    CHECK_FALSE(t.exists("/etc/systemd/system/dbus-org.bluez.service"));
    CHECK(t.get("/etc/systemd/system/ModemManager.service")->link == "/dev/null");
    CHECK_FALSE(t.exists("/etc/systemd/system/rpi-eeprom-update.service"));
    const Entry* def = t.get("/etc/systemd/system/default.target");
    CHECK(def->link == "/usr/lib/systemd/system/multi-user.target");
    CHECK(def->mtime.sec == k_step_now.sec);
    Tree once = t;
    run_step(yaml, t);
    CHECK(listing(t) == listing(once));
}

TEST_CASE("systemd: unmask and enable a masked unit in one step; enabling a masked unit alone fails",
          "[step][systemd]") {
    Tree t = with_units();
    t.put("/usr/lib/systemd/system/rpi-eeprom-update.service",
          file("[Install]\nWantedBy=multi-user.target\n"));
    CHECK_THROWS_WITH(
        run_step("systemd: {enable: [rpi-eeprom-update.service]}", t),
        "systemd unit 'rpi-eeprom-update.service' is masked; list it under 'unmask' too to enable it");
    run_step("systemd: {unmask: [rpi-eeprom-update.service], enable: [rpi-eeprom-update.service]}", t);
    CHECK(units::is_enabled(t, "rpi-eeprom-update.service"));
    CHECK_FALSE(units::is_masked(t, "rpi-eeprom-update.service"));
    // Unmasking what is not masked does nothing, and never removes a real unit file.
    t.put("/etc/systemd/system/local.service", file("[Service]\n"));
    run_step("systemd: {unmask: [local.service, ssh.service]}", t);
    CHECK(t.exists("/etc/systemd/system/local.service"));
}

TEST_CASE("systemd: units missing from the image are errors when applied", "[step][systemd]") {
    Tree t = with_units();
    CHECK_THROWS_WITH(run_step("systemd: {enable: [nope.service]}", t),
                      "systemd unit 'nope.service' is not in the image");
    CHECK_THROWS_WITH(run_step("systemd: {disable: [nope.service]}", t),
                      "cannot disable systemd unit 'nope.service': it is not in the image");
    CHECK_THROWS_WITH(run_step("systemd: {default_target: rescue.target}", t),
                      "default target 'rescue.target' is not in the image");
    t.put("/etc/systemd/system/local.service", file("[Service]\n"));
    CHECK_THROWS_WITH(
        run_step("systemd: {mask: [local.service]}", t),
        "cannot mask systemd unit 'local.service': /etc/systemd/system/local.service is a unit file, "
        "which masking would delete");
    run_step("systemd: {mask: [nope.service]}", t); // systemctl masks absent units too
    CHECK(units::is_masked(t, "nope.service"));
}

TEST_CASE("systemd: unit names are checked when the recipe is read", "[step][systemd]") {
    CHECK(error_of("systemd: {enable: [ssh, ssh.servce, \"a b.service\", .service]}") ==
          "t.yaml:1:20: step 'systemd': 'ssh' does not end in a unit type such as .service or .target (did "
          "you mean "
          "'ssh.service'?)\n"
          "t.yaml:1:25: step 'systemd': 'ssh.servce' does not end in a unit type such as .service or .target "
          "(did you "
          "mean 'ssh.service'?)\n"
          "t.yaml:1:37: step 'systemd': 'a b.service' is not a systemd unit name\n"
          "t.yaml:1:52: step 'systemd': '.service' has no name before its type");
    CHECK(
        error_of(
            "systemd: {enable: [ssh.service], disable: ssh.service, unmask: [x.socket], mask: [x.socket]}") ==
        "t.yaml:1:20: step 'systemd': 'ssh.service' is under both 'disable' and 'enable'\n"
        "t.yaml:1:83: step 'systemd': 'x.socket' is under both 'unmask' and 'mask'");
    CHECK(error_of("systemd: {default_target: multi-user.service}") ==
          "t.yaml:1:27: step 'systemd': default_target 'multi-user.service' must be a target such as "
          "'multi-user.target'");
    CHECK(error_of("systemd: {}") ==
          "t.yaml:1:10: step 'systemd': nothing to do; give 'enable', 'disable', 'mask', "
          "'unmask' or 'default_target'");
    CHECK(error_of("systemd: {enabel: [x.service]}") ==
          "t.yaml:1:11: step 'systemd': unknown key 'enabel' (did you mean 'enable'?)");
    CHECK(describe_step("systemd: {enable: a.service, mask: b.socket, default_target: multi-user.target}") ==
          "systemd: mask b.socket; enable a.service; default multi-user.target");
}
