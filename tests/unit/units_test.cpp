#include "core/boot.hpp"
#include "core/error.hpp"
#include "core/units.hpp"
#include "helpers.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

TEST_CASE("enable follows [Install]: WantedBy, Alias and Also", "[units]") {
    Tree t;
    t.put("/lib", link("usr/lib"));
    t.put("/usr/lib/systemd/system/ssh.service",
          file("[Unit]\nDescription=ssh\n[Service]\nExecStart=/usr/sbin/sshd\n[Install]\nWantedBy=multi-user.target\n"
               "Alias=sshd.service\nAlso=ssh.socket\n"));
    t.put("/lib/systemd/system/ssh.socket", file("[Socket]\n[Install]\nWantedBy=sockets.target\n"));
    units::enable(t, "ssh.service");
    CHECK(t.get("/etc/systemd/system/multi-user.target.wants/ssh.service")->link == "/usr/lib/systemd/system/ssh.service");
    CHECK(t.get("/etc/systemd/system/sshd.service")->link == "/usr/lib/systemd/system/ssh.service");
    CHECK(t.get("/etc/systemd/system/sockets.target.wants/ssh.socket")->link == "/usr/lib/systemd/system/ssh.socket");
    CHECK(units::is_enabled(t, "ssh.service"));
    units::disable(t, "ssh.service");
    CHECK_FALSE(units::is_enabled(t, "ssh.service"));
    CHECK_FALSE(t.exists("/etc/systemd/system/sshd.service"));
    units::mask(t, "ssh.service");
    CHECK(t.get("/etc/systemd/system/ssh.service")->link == "/dev/null");
    CHECK_THROWS_WITH(units::enable(t, "nope.service"), Catch::Contains("'nope.service' is not in the image"));
}

TEST_CASE("templates need an instance or a DefaultInstance", "[units]") {
    Tree t;
    t.put("/usr/lib/systemd/system/getty@.service", file("[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n"));
    units::enable(t, "getty@.service");
    CHECK(t.exists("/etc/systemd/system/getty.target.wants/getty@tty1.service"));
    units::enable(t, "getty@ttyAMA0.service");
    CHECK(t.exists("/etc/systemd/system/getty.target.wants/getty@ttyAMA0.service"));
}

TEST_CASE("the boot folder comes from fstab, else from where config.txt is", "[boot]") {
    Tree bookworm;
    bookworm.put("/etc/fstab", file("proc /proc proc defaults 0 0\nPARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\n"));
    CHECK(boot_dir(bookworm) == "/boot/firmware");
    Tree hypriot;
    hypriot.put("/boot/config.txt", file("hdmi_force_hotplug=1\n"));
    CHECK(boot_dir(hypriot) == "/boot");
    Tree none;
    CHECK_FALSE(boot_dir(none));
    CHECK_THROWS_WITH(require_boot_dir(none, "step 'cmdline'"), Catch::Contains("needs a Raspberry Pi boot partition"));
}
