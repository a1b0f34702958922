// imgbuild: the command line. Parses arguments (CLI11), runs the pipeline, maps errors to exit codes.
#include "core/build.hpp"
#include "core/commands.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/manifest.hpp"
#include "core/validate.hpp"
#include "version.hpp" // generated at build time from git (cmake/version.cmake)

#include <CLI/CLI.hpp>

#include <clocale>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>


namespace {

const char* k_footer = R"(Examples:
  imgbuild recipes/worker.yaml                   build every output of the recipe into ./out
  imgbuild recipes/worker.yaml --out /srv/build  build into another folder
  imgbuild recipes/worker.yaml --force           replace what is at an output's path though imgbuild did not write it
  imgbuild recipes/worker.yaml --dry-run         print steps x nodes x outputs, touch nothing
  imgbuild validate recipes/worker.yaml          check the recipe, report every problem at once
  imgbuild recipes/worker.yaml --set domain=lab  override a recipe variable
  imgbuild inspect raspios-bookworm-arm64-lite.img.xz
  imgbuild ls disk.img:/etc                      list a folder inside an image
  imgbuild cat disk.img:/boot/firmware/cmdline.txt

Exit codes: 0 success; 1 the build failed (nothing was left in the output folder);
            2 bad command line or recipe (nothing was written); 130 interrupted.)";

ib::Overrides parse_sets(const std::vector<std::string>& sets) {
    ib::Overrides out;
    for (const auto& s : sets) {
        auto eq = s.find('=');
        if (eq == std::string::npos || eq == 0)
            throw ib::Error("imgbuild: --set '" + ib::validate::shown(s) + "': expected NAME=VALUE",
                            ib::k_exit_usage);
        if (auto why = ib::validate::var_name(s.substr(0, eq)))
            throw ib::Error("imgbuild: --set '" + ib::validate::shown(s) + "': '" +
                                ib::validate::shown(s.substr(0, eq)) + "' is not a variable name: it " + *why,
                            ib::k_exit_usage);
        out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    }
    return out;
}

// The manifest is written beside FILE under a temporary name and renamed once complete. The temporary
// file is made before the build, so that an unwritable FILE stops it before any output is written;
// it is removed again when the build fails.
class ManifestFile {
public:
    explicit ManifestFile(std::string file) : m_file(std::move(file)), m_temp(m_file + ".imgbuild-tmp") {
        std::ofstream probe(m_temp, std::ios::binary | std::ios::trunc);
        if (!probe)
            throw ib::Error("imgbuild: --manifest '" + ib::validate::shown(m_file) + "': cannot create '" +
                                ib::validate::shown(m_temp) + "'",
                            ib::k_exit_usage);
        m_open = true;
    }
    ~ManifestFile() {
        if (m_open) std::remove(m_temp.c_str());
    }
    ManifestFile(const ManifestFile&) = delete;
    ManifestFile& operator=(const ManifestFile&) = delete;

    void commit(const std::string& json) {
        std::ofstream out(m_temp, std::ios::binary | std::ios::trunc);
        out << json;
        out.close();
        if (!out || std::rename(m_temp.c_str(), m_file.c_str()) != 0)
            throw ib::Error("imgbuild: cannot write the manifest '" + ib::validate::shown(m_file) + "'");
        m_open = false;
    }

private:
    std::string m_file;
    std::string m_temp;
    bool m_open = false;
};

void print_warnings(const ib::Plan& plan) {
    for (const auto& w : plan.warnings) std::cerr << w << '\n';
}

} // namespace

int main(int argc, char** argv) {
    std::setlocale(LC_ALL, "C.UTF-8"); // archive member names are UTF-8 bytes, whatever the caller's locale

    CLI::App app{"imgbuild: OS images, netboot trees and NFS roots for Raspberry Pi and Debian clusters, from one recipe"};
    app.footer(k_footer);
    app.set_version_flag("--version", std::string("imgbuild ") + IMGBUILD_VERSION);

    std::string recipe;
    std::string out_dir = "out";
    std::vector<std::string> sets;
    bool dry_run = false;
    int verbose = 0;
    bool quiet = false;
    bool insecure = false;
    app.add_option("recipe", recipe, "the recipe to build (YAML)");
    app.add_option("-o,--out", out_dir, "output folder (default: ./out)");
    app.add_option("--set", sets, "override a recipe variable: NAME=VALUE (repeatable)")->allow_extra_args(false);
    app.add_flag("-n,--dry-run", dry_run, "print the plan (steps x nodes x outputs) and touch nothing");
    app.add_flag("-v,--verbose", verbose, "say more (layers, every step per node)");
    app.add_flag("-q,--quiet", quiet, "only warnings and errors");
    app.add_flag("--insecure", insecure, "allow a base URL without a sha256 pin (then downloaded again every build)");
    std::string manifest;
    app.add_option("--manifest", manifest,
                   "write what the build was made from and wrote (recipe files, base, vars, nodes, steps, output "
                   "files with sha256) as JSON to FILE; with --dry-run, without the output files");
    bool force = false;
    app.add_flag("--force", force,
                 "replace what is at an output's path even when imgbuild did not write it there (a folder or file of "
                 "yours, another output's): by default that is an error");
    bool prune = false;
    app.add_flag("--prune", prune,
                 "netboot: remove the TFTP folders and NFS roots of nodes no longer in the recipe (default: keep them, "
                 "with a warning)");

    auto* validate = app.add_subcommand("validate", "check a recipe and everything it names; write nothing");
    std::string validate_recipe;
    validate->add_option("recipe", validate_recipe, "the recipe to check")->required();
    validate->fallthrough();

    auto* inspect = app.add_subcommand("inspect", "show an image's partitions, filesystems, OS, family, boot folder, cmdline");
    std::string inspect_image;
    bool inspect_json = false;
    inspect->add_option("image", inspect_image, "disk image (.img, .img.xz, .zip, ...)")->required();
    inspect->add_flag("--json", inspect_json, "print JSON");

    auto* ls = app.add_subcommand("ls", "list files inside an image: IMAGE[:PATH]");
    std::string ls_spec;
    bool ls_recursive = false;
    ls->add_option("spec", ls_spec, "IMAGE or IMAGE:/path")->required();
    ls->add_flag("-R,--recursive", ls_recursive, "everything below PATH");

    auto* cat = app.add_subcommand("cat", "print a file from inside an image: IMAGE:PATH");
    std::string cat_spec;
    cat->add_option("spec", cat_spec, "IMAGE:/path")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : ib::k_exit_usage;
    }

    ib::log::set_level(quiet ? ib::log::Level::Quiet : verbose ? ib::log::Level::Verbose : ib::log::Level::Normal);
    ib::install_interrupt_handlers();
    try {
        ib::Overrides overrides = parse_sets(sets);
        if (out_dir.empty()) throw ib::Error("imgbuild: --out '': give an output folder", ib::k_exit_usage);
        ib::SourceOptions source_options;
        source_options.insecure = insecure;
        if (inspect->parsed()) return ib::cmd_inspect(inspect_image, inspect_json, std::cout);
        if (ls->parsed()) return ib::cmd_ls(ls_spec, ls_recursive, std::cout);
        if (cat->parsed()) return ib::cmd_cat(cat_spec, std::cout);
        ib::OutputChecks checks;
        checks.out_dir = out_dir;
        checks.force = force;
        if (validate->parsed()) {
            ib::Plan plan = ib::make_plan(validate_recipe, overrides, source_options, &checks);
            print_warnings(plan);
            if (verbose) std::cout << ib::describe(plan, out_dir);
            auto count = [](size_t n, const char* what) {
                return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
            };
            std::cout << validate_recipe << ": ok (" << count(plan.steps.size(), "step") << ", "
                      << count(plan.recipe.nodes.size(), "node") << ", " << count(plan.outputs.size(), "output") << ")\n";
            return ib::k_exit_ok;
        }
        if (recipe.empty()) {
            std::cerr << app.help() << "\nimgbuild: give a recipe to build, e.g. imgbuild recipes/worker.yaml\n";
            return ib::k_exit_usage;
        }
        ib::Plan plan = ib::make_plan(recipe, overrides, source_options, &checks);
        print_warnings(plan);
        if (dry_run) {
            std::cout << ib::describe(plan, out_dir);
            if (!manifest.empty()) ManifestFile(manifest).commit(ib::manifest_json(plan, IMGBUILD_VERSION, ""));
            return ib::k_exit_ok;
        }
        ib::BuildOptions options;
        options.out_dir = out_dir;
        options.prune = prune;
        options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        std::optional<ManifestFile> manifest_file;
        if (!manifest.empty()) manifest_file.emplace(manifest);
        ib::execute(plan, options);
        if (manifest_file) manifest_file->commit(ib::manifest_json(plan, IMGBUILD_VERSION, out_dir));
        return ib::k_exit_ok;
    } catch (const ib::Error& e) {
        // Recipe errors are lines of "file:line:col: ..." already; a prefix would break the first.
        if (e.exit_code() == ib::k_exit_usage) std::cerr << e.what() << '\n';
        else std::cerr << "imgbuild: error: " << e.what() << '\n';
        return e.exit_code();
    } catch (const std::exception& e) {
        std::cerr << "imgbuild: internal error: " << e.what() << '\n';
        return ib::k_exit_build_failed;
    }
}
