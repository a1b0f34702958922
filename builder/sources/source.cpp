#include "sources/source.hpp"

#include "core/error.hpp"
#include "core/fetch.hpp"
#include "core/recipe.hpp"

#include <cctype>
#include <sys/stat.h>

namespace ib {

namespace {

// An image or tarball named by URL: downloaded (or found in the cache) when read, then read as the
// local file it has become. The download was checked against the pin, so the reader is not given it.
class DownloadSource final : public Source {
public:
    DownloadSource(std::string kind, std::string url, std::string sha256)
        : m_kind(std::move(kind)), m_url(std::move(url)), m_sha256(std::move(sha256)) {}

    std::string describe() const override {
        return m_kind + " " + m_url + (m_sha256.empty() ? " (not pinned)" : " (sha256 " + m_sha256.substr(0, 12) + "…)");
    }

    Tree read(Timestamp implied_mtime) const override {
        try {
            return read_once(implied_mtime);
        } catch (const Error& e) {
            // A cached download that lost bytes without its times changing is found here, by failing
            // to read: hashed again and, no longer what was pinned, removed and fetched once more.
            if (e.exit_code() == k_exit_interrupted || m_sha256.empty() || fetch::recheck(m_sha256)) throw;
            return read_once(implied_mtime);
        }
    }

private:
    Tree read_once(Timestamp implied_mtime) const {
        std::string file;
        try {
            file = fetch::download(m_url, m_sha256);
        } catch (const Error& e) {
            if (e.exit_code() == k_exit_interrupted) throw;
            throw Error("base: " + std::string(e.what()), e.exit_code());
        }
        auto local = m_kind == "image" ? make_image_source(file, "") : make_tarball_source(file, "");
        return local->read(implied_mtime);
    }

    std::string m_kind;
    std::string m_url;
    std::string m_sha256;
};

// The pin in lower case ("" when there is none); a malformed one is reported.
std::string read_pin(const Doc& base, const std::optional<std::string>& sha256, Diagnostics& diag) {
    if (!sha256) return "";
    bool hex = sha256->size() == 64;
    for (char c : *sha256) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
    if (!hex) diag.error(base.find("sha256")->mark(), "base: sha256 '" + *sha256 + "' is not 64 hex digits");
    std::string pin = *sha256;
    for (auto& c : pin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return pin;
}

} // namespace

std::unique_ptr<Source> make_download_source(std::string kind, std::string url, std::string sha256) {
    return std::make_unique<DownloadSource>(std::move(kind), std::move(url), std::move(sha256));
}

std::unique_ptr<Source> parse_base(const Doc& base, Diagnostics& diag, const SourceOptions& options) {
    MapReader m(base, diag, "base");
    if (!m.valid()) return nullptr;
    std::string kind = m.one_of({"image", "tarball", "dir"});
    auto sha256 = m.string("sha256");
    m.finish();
    if (kind.empty()) return nullptr;
    const Doc& where = *base.find(kind);
    auto value = doc_string(where, diag, "base: '" + kind + "'");
    if (!value) return nullptr;
    if (kind != "dir" && fetch::is_url(*value)) {
        if (auto ok = fetch::check_url(*value); !ok) {
            diag.error(where.mark(), "base: '" + *value + "': " + ok.error());
            return nullptr;
        }
        if (!sha256 && !options.insecure)
            diag.error(base.mark(), "base: a URL needs a sha256 pin (or run with --insecure)");
        return make_download_source(kind, *value, read_pin(base, sha256, diag));
    }
    std::string p = host_path(where.mark(), *value);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        diag.error(where.mark(), "base: " + errno_message(kind + " '" + p + "'", errno));
        return nullptr;
    }
    std::string pin = read_pin(base, sha256, diag);
    if (sha256 && kind == "dir") diag.error(base.find("sha256")->mark(), "base: sha256 pins a file; a folder has none");
    if (kind == "dir") {
        if (!S_ISDIR(st.st_mode)) diag.error(where.mark(), "base: '" + p + "' is not a folder");
        return make_dir_source(p);
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) diag.error(where.mark(), "base: '" + p + "' is not a file");
    if (kind == "image") return make_image_source(p, pin);
    return make_tarball_source(p, pin);
}

} // namespace ib
