#include "helpers.hpp"
#include "step_runner.hpp"

#include <catch2/catch.hpp>

using namespace ib;
using namespace ib::test;

namespace {

// Raspberry Pi OS Bookworm's config.txt, abridged.
const std::string k_bookworm = "# For more options and information see\n"
                               "# http://rptl.io/configtxt\n"
                               "\n"
                               "#dtparam=spi=on\n"
                               "\n"
                               "# Enable audio (loads snd_bcm2835)\n"
                               "dtparam=audio=on\n"
                               "\n"
                               "# Enable DRM VC4 V3D driver\n"
                               "dtoverlay=vc4-kms-v3d\n"
                               "max_framebuffers=2\n"
                               "\n"
                               "arm_64bit=1\n"
                               "\n"
                               "[cm4]\n"
                               "# Enable host mode on the 2711 built-in XHCI USB controller.\n"
                               "otg_mode=1\n"
                               "\n"
                               "[cm5]\n"
                               "dtoverlay=dwc2,dr_mode=host\n"
                               "\n"
                               "[all]\n";

Tree pi_boot(const std::string& config = k_bookworm) {
    Tree t;
    t.put("/etc/fstab", file("PARTUUID=6c586e13-01 /boot/firmware vfat defaults 0 2\n"));
    t.put("/boot/firmware/config.txt", file(config, 0755));
    return t;
}

std::string config_of(const Tree& t) {
    return t.read_file("/boot/firmware/config.txt");
}

} // namespace

TEST_CASE("config_txt: [all] settings replace in place or go after the last [all] block",
          "[step][config_txt]") {
    Tree t = pi_boot();
    const std::string yaml = "config_txt: {set: {arm_64bit: 0, enable_uart: 1, dtparam: [audio=on, spi=on], "
                             "dtoverlay: disable-bt}}";
    run_step(yaml, t);
    std::string want = k_bookworm;
    want.replace(want.find("arm_64bit=1"), 11, "arm_64bit=0");
    want += "enable_uart=1\ndtparam=spi=on\ndtoverlay=disable-bt\n";
    CHECK(config_of(t) == want);
    CHECK(t.get("/boot/firmware/config.txt")->perm == 0755);
    Tree once = t;
    run_step(yaml, t);
    CHECK(config_of(t) == want);
    CHECK(listing(t) == listing(once));
}

TEST_CASE("config_txt: other sections, by name with or without brackets", "[step][config_txt]") {
    Tree t = pi_boot();
    const std::string yaml =
        "config_txt: {sections: {\"[cm4]\": {otg_mode: 0, arm_boost: 1}, pi5: {dtparam: pciex1}, "
        "cm5: {dtoverlay: \"dwc2,dr_mode=host\"}}}";
    run_step(yaml, t);
    std::string want = k_bookworm;
    want.replace(want.find("otg_mode=1\n"), 11, "otg_mode=0\narm_boost=1\n");
    want += "\n[pi5]\ndtparam=pciex1\n";
    CHECK(config_of(t) == want);
    Tree once = t;
    run_step(yaml, t);
    CHECK(config_of(t) == want);
}

TEST_CASE("config_txt: a key in [pi4] is not the same key in [all]", "[step][config_txt]") {
    Tree t =
        pi_boot("arm_boost=0\n[pi4]\narm_boost=1\n[all]\n#arm_boost=0\n  arm_boost = 0\ngpu_mem=16\n\n\n");
    run_step("config_txt: {set: {arm_boost: 2}}", t);
    // Both [all] blocks' lines take the value (the later one would win); [pi4] and comments stay.
    CHECK(config_of(t) ==
          "arm_boost=2\n[pi4]\narm_boost=1\n[all]\n#arm_boost=0\n  arm_boost=2\ngpu_mem=16\n\n\n");
    run_step("config_txt: {set: {hdmi_group: 2}, lines: [\"# added\"]}", t);
    CHECK(config_of(t) == "arm_boost=2\n[pi4]\narm_boost=1\n[all]\n#arm_boost=0\n  arm_boost=2\ngpu_mem=16\n"
                          "hdmi_group=2\n# added\n\n\n");
    run_step("config_txt: {section: \"[pi4]\", lines: [\"dtoverlay=vc4-kms-v3d\", \"# added\"]}", t);
    CHECK(config_of(t) ==
          "arm_boost=2\n[pi4]\narm_boost=1\ndtoverlay=vc4-kms-v3d\n# added\n[all]\n#arm_boost=0\n"
          "  arm_boost=2\ngpu_mem=16\nhdmi_group=2\n# added\n\n\n");
}

TEST_CASE("config_txt: settings above the first header belong to [all]", "[step][config_txt]") {
    Tree t = pi_boot("[pi4]\nx=1\n");
    run_step("config_txt: {set: {y: 2}}", t);
    CHECK(config_of(t) == "y=2\n[pi4]\nx=1\n");
    Tree crlf = pi_boot("# edited on Windows\r\ngpu_mem=64\r\n[pi4]\r\nx=1"); // CRLF, no newline at the end
    run_step("config_txt: {set: {gpu_mem: 128}}", crlf);
    CHECK(config_of(crlf) == "# edited on Windows\r\ngpu_mem=128\r\n[pi4]\r\nx=1");
    run_step("config_txt: {sections: {pi4: {x: 2}, cm4: {y: 1}}}", crlf);
    CHECK(config_of(crlf) == "# edited on Windows\r\ngpu_mem=128\r\n[pi4]\r\nx=2\r\n\r\n[cm4]\r\ny=1\r\n");
}

TEST_CASE("config_txt: a missing config.txt is created", "[step][config_txt]") {
    Tree t;
    t.put("/boot/cmdline.txt", file("root=/dev/sda2\n"));
    run_step("config_txt: {sections: {pi4: {arm_boost: 1}, all: {arm_64bit: 1}}}", t);
    CHECK(t.read_file("/boot/config.txt") == "arm_64bit=1\n[pi4]\narm_boost=1\n");
    CHECK(t.get("/boot/config.txt")->perm == 0644);
    CHECK(t.get("/boot/config.txt")->mtime.sec == k_step_now.sec);
    Tree not_a_pi;
    CHECK_THROWS_WITH(run_step("config_txt: {set: {a: 1}}", not_a_pi),
                      Catch::StartsWith("editing config.txt needs a Raspberry Pi boot partition"));
}

TEST_CASE("config_txt: options are checked when the recipe is read", "[step][config_txt]") {
    CHECK(error_of("config_txt: {}") ==
          "t.yaml:1:13: step 'config_txt': nothing to do; give 'set', 'lines' or 'sections'");
    CHECK(error_of("config_txt: {set: {enable_uart: true, arm_boost: [1, 2], \"a b\": 1}}") ==
          "t.yaml:1:33: step 'config_txt': 'enable_uart' is true; config.txt takes 1 or 0\n"
          "t.yaml:1:50: step 'config_txt': 'arm_boost' takes one value; only dtoverlay, dtparam and gpio "
          "take a list\n"
          "t.yaml:1:58: step 'config_txt': 'a b' is not a config.txt setting name");
    CHECK(error_of("config_txt: {section: \"[pi4\", set: {a: 1}, lines: [\"[pi5]\"]}") ==
          "t.yaml:1:23: step 'config_txt': section '[pi4' is not a filter such as 'pi4' or '[pi4]'");
    CHECK(
        error_of("config_txt: {lines: [\"[pi5]\", \"a\\nb\"]}") ==
        "t.yaml:1:22: step 'config_txt': '[pi5]' is a section header; name sections with 'section' or "
        "'sections'\n"
        "t.yaml:1:31: step 'config_txt': 'lines' item contains a line break; give each line as its own item");
    CHECK(error_of("config_txt: {set: {gpu_mem: 16}, sections: {all: {gpu_mem: 32}}}") ==
          "t.yaml:1:60: step 'config_txt': 'gpu_mem' is set twice for [all] (first at t.yaml:1:29)");
    CHECK(error_of("config_txt: {lines: [\"gpu_mem=64\", \"dtparam=spi=on\"], sections: {all: {gpu_mem: 32, dtparam: "
                   "spi=on}}}") ==
          "t.yaml:1:22: step 'config_txt': line 'gpu_mem=64' sets 'gpu_mem', which is set for [all] at t.yaml:1:81 too");
    CHECK(error_of("config_txt: {section: pi4, sections: {pi4: {a: 1}}}") ==
          "t.yaml:1:23: step 'config_txt': 'section' names where 'set' and 'lines' go; give one of them");
    CHECK(error_of("config_txt: {sectoins: {}}") ==
          "t.yaml:1:13: step 'config_txt': nothing to do; give 'set', 'lines' or 'sections'\n"
          "t.yaml:1:14: step 'config_txt': unknown key 'sectoins' (did you mean 'sections'?)");
    CHECK(describe_step("config_txt: {set: {a: 1}, sections: {pi4: {b: 2}}, lines: [x]}") ==
          "edit config.txt: [all] a=1 +1 line; [pi4] b=2");
}
