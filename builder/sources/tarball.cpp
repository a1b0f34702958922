// A rootfs tarball on the host, optionally pinned by sha256.
#include "core/log.hpp"
#include "ext/archive.hpp"
#include "ext/sha256.hpp"
#include "sources/source.hpp"

namespace ib {

namespace {

class TarballSource final : public Source {
public:
    TarballSource(std::string file, std::string sha256) : m_file(std::move(file)), m_sha256(std::move(sha256)) {}

    std::string describe() const override {
        return "tarball " + m_file + (m_sha256.empty() ? "" : " (sha256 " + m_sha256.substr(0, 12) + "…)");
    }

    Tree read(Timestamp implied_mtime) const override {
        if (!m_sha256.empty()) {
            std::string actual = sha256_file(m_file).value_or_throw("base");
            if (actual != m_sha256)
                throw Error("base: tarball '" + m_file + "' has sha256 " + actual + ", but the recipe pins " + m_sha256);
        }
        Tree tree("base", implied_mtime);
        archive::read_tarball(m_file, tree).value_or_throw("base");
        return tree;
    }

private:
    std::string m_file;
    std::string m_sha256;
};

} // namespace

std::unique_ptr<Source> make_tarball_source(std::string file, std::string sha256) {
    return std::make_unique<TarballSource>(std::move(file), std::move(sha256));
}

} // namespace ib
