// Output `dir`: the root filesystem as a host folder, with real owners, modes, xattrs, devices,
// hardlinks, holes and mtimes, as an NFS root needs it.
//
//   - dir: {path: rootfs}
//
// Owners other than the builder's own and device nodes need root. Without it the output stops before
// writing anything, saying so: a root filled with the builder's uid would boot into a broken system.
#include "core/staging.hpp"
#include "outputs/dir_writer.hpp"
#include "outputs/output.hpp"

namespace ib {

namespace {

class DirOutput final : public Output {
public:
    explicit DirOutput(std::string p) { m_path = std::move(p); }
    std::string describe() const override { return "dir " + m_path + "/"; }
    bool is_dir() const override { return true; }
    void check(const Tree& tree) const override { check_root_needed(tree, "output 'dir' " + m_path); }
    void write(const Tree& tree, Staging& staging, const OutputWriteEnv&) const override {
        write_folder(tree, staging.temp_for(m_path));
    }
};

} // namespace

std::unique_ptr<Output> parse_dir_output(const Doc& options, OutputParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto p = output_path(m, options, env);
    m.finish();
    if (!p) return nullptr;
    return std::make_unique<DirOutput>(*p);
}

} // namespace ib
