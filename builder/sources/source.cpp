#include "sources/source.hpp"

#include "core/error.hpp"
#include "core/recipe.hpp"

#include <cctype>
#include <sys/stat.h>

namespace ib {

std::unique_ptr<Source> parse_base(const Doc& base, Diagnostics& diag) {
    MapReader m(base, diag, "base");
    if (!m.valid()) return nullptr;
    std::string kind = m.one_of({"image", "tarball", "dir"});
    auto sha256 = m.string("sha256");
    m.finish();
    if (kind.empty()) return nullptr;
    const Doc& where = *base.find(kind);
    auto value = doc_string(where, diag, "base: '" + kind + "'");
    if (!value) return nullptr;
    std::string p = host_path(where.mark(), *value);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        diag.error(where.mark(), "base: " + errno_message(kind + " '" + p + "'", errno));
        return nullptr;
    }
    if (sha256) {
        bool hex = sha256->size() == 64;
        for (char c : *sha256) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
        if (!hex) diag.error(base.find("sha256")->mark(), "base: sha256 '" + *sha256 + "' is not 64 hex digits");
        if (kind != "tarball") diag.error(base.find("sha256")->mark(), "base: sha256 pins a file; a folder has none");
    }
    if (kind == "dir") {
        if (!S_ISDIR(st.st_mode)) diag.error(where.mark(), "base: '" + p + "' is not a folder");
        return make_dir_source(p);
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) diag.error(where.mark(), "base: '" + p + "' is not a file");
    std::string pin = sha256.value_or("");
    for (auto& c : pin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (kind == "image") return make_image_source(p, pin);
    return make_tarball_source(p, pin);
}

} // namespace ib
