#include "ext/package.hpp"

#include "core/path.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <unistd.h>

namespace ib::package {

namespace {

struct ReadDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ReadDeleter>;

std::string message(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

// Reads every member of an opened archive. `what` names it in messages: "'x.tar.gz'".
Result<std::vector<PackageFile>> read_members(struct archive* a, const std::string& what) {
    std::vector<PackageFile> out;
    std::map<std::string, size_t> regular; // path -> index in `out`, for hardlink members
    archive_entry* ae = nullptr;
    size_t count = 0;
    std::vector<char> buf(1 << 16);
    try {
        while (true) {
            check_interrupted();
            int r = archive_read_next_header(a, &ae);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN) return fail(what + ": " + message(a));
            ++count;
            const char* name = archive_entry_pathname(ae);
            if (!name) return fail(what + ": member " + std::to_string(count) + " has no usable name");
            PackageFile f;
            f.path = path::normalise(name);
            f.perm = archive_entry_perm(ae) & 07777;
            f.uid = static_cast<uint32_t>(archive_entry_uid(ae));
            f.gid = static_cast<uint32_t>(archive_entry_gid(ae));
            if (const char* hard = archive_entry_hardlink(ae)) {
                auto it = regular.find(path::normalise(hard));
                if (it == regular.end())
                    return fail(what + ": '" + f.path + "' is a hardlink to '" + hard +
                                "', which is not a file before it");
                f.content = out[it->second].content;
                out.push_back(std::move(f));
                continue;
            }
            switch (archive_entry_filetype(ae)) {
            case AE_IFDIR: f.type = FileType::Directory; break;
            case AE_IFLNK: {
                f.type = FileType::Symlink;
                const char* target = archive_entry_symlink(ae);
                f.link = target ? target : "";
                break;
            }
            case AE_IFREG: {
                std::string data;
                if (archive_entry_size_is_set(ae)) data.reserve(static_cast<size_t>(archive_entry_size(ae)));
                la_ssize_t n = 0;
                while ((n = archive_read_data(a, buf.data(), buf.size())) > 0)
                    data.append(buf.data(), static_cast<size_t>(n));
                if (n < 0) return fail(what + ": reading '" + f.path + "': " + message(a));
                f.content = make_blob(std::move(data));
                regular[f.path] = out.size();
                break;
            }
            default:
                return fail(what + ": '" + f.path +
                            "' is a device, fifo or socket; a package holds only files, folders and symlinks");
            }
            if (f.path == "/") continue; // "./": the folder the package is unpacked into
            out.push_back(std::move(f));
        }
    } catch (const Error& e) {
        return fail(what + ": " + e.what());
    }
    if (count == 0) return fail(what + " holds no members (is it a tarball?)");
    return out;
}

// A tar stream read from the current member of the outer `ar` archive, without holding it in memory.
struct InnerSource {
    struct archive* outer;
    std::vector<char> buf = std::vector<char>(1 << 16);
};

la_ssize_t read_inner(struct archive* inner, void* data, const void** block) {
    auto* src = static_cast<InnerSource*>(data);
    la_ssize_t n = archive_read_data(src->outer, src->buf.data(), src->buf.size());
    if (n < 0) archive_set_error(inner, EIO, "%s", message(src->outer).c_str());
    *block = src->buf.data();
    return n;
}

Result<std::vector<PackageFile>> read_inner_tar(struct archive* outer, const std::string& what) {
    ArchivePtr inner(archive_read_new());
    archive_read_support_filter_all(inner.get());
    archive_read_support_format_tar(inner.get());
    InnerSource src{outer};
    if (archive_read_open(inner.get(), &src, nullptr, read_inner, nullptr) != ARCHIVE_OK)
        return fail(what + ": " + message(inner.get()));
    return read_members(inner.get(), what);
}

// The first paragraph of a control file: "Key: value" lines; continuation lines are skipped.
DebControl parse_control(const std::string& text) {
    DebControl c;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) break;
        if (line[0] == ' ' || line[0] == '\t') continue;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = line.substr(0, colon);
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r'))
            value.pop_back();
        if (key == "Package")
            c.package = value;
        else if (key == "Version")
            c.version = value;
        else if (key == "Architecture")
            c.architecture = value;
    }
    return c;
}

// libarchive reads the first block when it opens a file: a failure then is about the bytes, not the file.
bool readable(const std::string& file) {
    return ::access(file.c_str(), R_OK) == 0;
}

bool starts_with(const std::string& s, const char* prefix) {
    return s.rfind(prefix, 0) == 0;
}

// Walks the `ar` members of a .deb; data.tar is read only when `files` is given.
Result<DebControl> read_deb_into(const std::string& file, std::vector<PackageFile>* files) {
    std::string what = "'" + file + "'";
    ArchivePtr a(archive_read_new());
    archive_read_support_format_ar(a.get());
    if (archive_read_open_filename(a.get(), file.c_str(), 1 << 16) != ARCHIVE_OK)
        return fail((readable(file) ? what + " is not a .deb: " : "cannot open " + what + ": ") + message(a.get()));
    std::optional<DebControl> control;
    bool have_data = false;
    bool first = true;
    archive_entry* ae = nullptr;
    while (true) {
        int r = archive_read_next_header(a.get(), &ae);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return fail(what + " is not a .deb: " + message(a.get()));
        std::string name = archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "";
        if (!name.empty() && name.back() == '/') name.pop_back(); // some ar writers end names with '/'
        if (first && name != "debian-binary")
            return fail(what + " is not a .deb: its first member is '" + name + "', not 'debian-binary'");
        first = false;
        if (starts_with(name, "control.tar")) {
            auto members = read_inner_tar(a.get(), what + " " + name);
            if (!members) return fail(members.error());
            for (const auto& m : members.value())
                if (m.path == "/control" && m.type == FileType::Regular) control = parse_control(read_all(m.content));
            if (!control) return fail(what + ": " + name + " has no 'control' file");
            if (!files) return *control;
        } else if (starts_with(name, "data.tar") && files) {
            auto members = read_inner_tar(a.get(), what + " " + name);
            if (!members) return fail(members.error());
            *files = std::move(members).value();
            have_data = true;
        }
    }
    if (first) return fail(what + " is not a .deb: it is empty");
    if (!control) return fail(what + " has no control.tar member");
    if (files && !have_data) return fail(what + " has no data.tar member");
    return *control;
}

} // namespace

Result<std::vector<PackageFile>> read_release_tarball(const std::string& file) {
    ArchivePtr a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_all(a.get());
    if (archive_read_open_filename(a.get(), file.c_str(), 1 << 20) != ARCHIVE_OK)
        return fail((readable(file) ? "tarball '" + file + "': " : "cannot open tarball '" + file + "': ") +
                    message(a.get()));
    return read_members(a.get(), "tarball '" + file + "'");
}

Result<DebControl> read_deb_control(const std::string& file) {
    return read_deb_into(file, nullptr);
}

Result<DebPackage> read_deb(const std::string& file) {
    DebPackage deb;
    auto control = read_deb_into(file, &deb.files);
    if (!control) return fail(control.error());
    deb.control = std::move(control).value();
    return deb;
}

} // namespace ib::package
