// Output `tar`: the root filesystem as a pax tarball, owners and xattrs kept, no root needed.
//
//   - tar: {path: worker-rootfs.tar.zst}
#include "core/error.hpp"
#include "ext/archive.hpp"
#include "core/staging.hpp"
#include "core/writer_support.hpp"
#include "outputs/output.hpp"

namespace ib {

namespace {

class TarOutput final : public Output {
public:
    TarOutput(std::string p, archive::TarOptions options) : m_options(options) { m_path = std::move(p); }
    std::string describe() const override { return "tar " + m_path; }
    void write(const Tree& tree, Staging& staging, const OutputWriteEnv& env) const override {
        std::string temp = staging.temp_for(m_path);
        create_output_file(temp, output_file_mode(tree));
        archive::TarOptions options = m_options;
        options.threads = env.threads;
        archive::write_tarball(tree, temp, options).value_or_throw("output 'tar' " + m_path);
    }

private:
    archive::TarOptions m_options;
};

} // namespace

std::unique_ptr<Output> parse_tar_output(const Doc& options, OutputParseEnv& env) {
    MapReader m(options, env.diag, env.what);
    if (!m.valid()) return nullptr;
    auto p = output_path(m, options, env);
    m.finish();
    if (!p) return nullptr;
    auto compression = archive::compression_for(*p);
    if (!compression) {
        env.diag.error(options.find("path")->mark(), env.what + ": " + compression.error());
        return nullptr;
    }
    archive::TarOptions tar;
    tar.compression = compression.value();
    return std::make_unique<TarOutput>(*p, tar);
}

} // namespace ib
