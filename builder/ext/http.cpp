#include "ext/http.hpp"

#include <curl/curl.h>

#include <cerrno>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <unistd.h>

namespace ib::http {

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What one curl_easy_perform saw; the callbacks fill it.
struct Attempt {
    const Request* request = nullptr;
    CURL* curl = nullptr;
    int fd = -1;
    uint64_t offset = 0; // bytes in the file before this attempt
    bool body_checked = false;
    std::string status_line; // the last "HTTP/1.1 404 Not Found"
    int write_errno = 0;
    std::exception_ptr error; // thrown by the progress callback
    char message[CURL_ERROR_SIZE] = {};
};

extern "C" size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* a = static_cast<Attempt*>(user);
    std::string line(data, size * count);
    if (line.rfind("HTTP/", 0) == 0) {
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
        a->status_line = line;
    }
    return size * count;
}

extern "C" size_t on_write(char* data, size_t size, size_t count, void* user) {
    auto* a = static_cast<Attempt*>(user);
    if (!a->body_checked) {
        // An error page must not land in the file: a later resume would append to it.
        long status = 0;
        curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 0 && (status < 200 || status >= 300)) return 0;
        a->body_checked = true;
    }
    size_t total = size * count;
    size_t done = 0;
    while (done < total) {
        ssize_t n = ::write(a->fd, data + done, total - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            a->write_errno = errno;
            return 0;
        }
        done += static_cast<size_t>(n);
    }
    return total;
}

extern "C" int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
    auto* a = static_cast<Attempt*>(user);
    if (!a->request->progress) return 0;
    try {
        uint64_t total = dltotal > 0 ? a->offset + static_cast<uint64_t>(dltotal) : 0;
        a->request->progress(a->offset + static_cast<uint64_t>(dlnow), total);
    } catch (...) {
        // Exceptions cannot cross curl's C frames: stop the transfer and rethrow after it.
        a->error = std::current_exception();
        return 1;
    }
    return 0;
}

struct Outcome {
    CURLcode code = CURLE_OK;
    long status = 0; // 0 for file://
    std::string status_line;
    std::string message;
    int write_errno = 0;
    std::exception_ptr error;
};

Outcome perform(const Request& r, int fd, uint64_t offset) {
    struct Easy {
        CURL* p;
        ~Easy() { curl_easy_cleanup(p); }
    } easy{curl_easy_init()};
    if (!easy.p) return {CURLE_FAILED_INIT, 0, {}, "cannot initialise libcurl", 0, {}};
    Attempt a;
    a.request = &r;
    a.curl = easy.p;
    a.fd = fd;
    a.offset = offset;
    CURL* c = easy.p;
    curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); // curl must not touch the build's signal handlers
    curl_easy_setopt(c, CURLOPT_USERAGENT, "imgbuild");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, r.low_speed_bytes);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r.low_speed_s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a.message);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    // The progress callback also runs while waiting, about once a second: that is where Ctrl-C is seen.
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (offset > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(offset));

    Outcome o;
    o.code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &o.status);
    o.status_line = a.status_line;
    o.message = a.message[0] ? a.message : curl_easy_strerror(o.code);
    o.write_errno = a.write_errno;
    o.error = a.error;
    return o;
}

// "HTTP 404 Not Found" from "HTTP/1.1 404 Not Found" (HTTP/2 has no reason phrase: "HTTP 404").
std::string describe_status(const Outcome& o) {
    std::string s = "HTTP " + std::to_string(o.status);
    const std::string& line = o.status_line;
    size_t code = line.find(' ');
    size_t reason = code == std::string::npos ? code : line.find(' ', code + 1);
    if (reason != std::string::npos && reason + 1 < line.size()) s += " " + line.substr(reason + 1);
    return s;
}

// The server cannot continue from `offset`: it ignored the Range (200), refused it (416), or the
// file is now shorter than what we hold.
bool cannot_resume(const Outcome& o) {
    return o.code == CURLE_RANGE_ERROR || o.code == CURLE_BAD_DOWNLOAD_RESUME || o.status == 416;
}

} // namespace

Result<void> check_url(const std::string& url) {
    global_init();
    std::unique_ptr<CURLU, void (*)(CURLU*)> u(curl_url(), curl_url_cleanup);
    if (!u) return fail("cannot initialise libcurl");
    if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME); rc != CURLUE_OK)
        return fail(std::string("not a valid URL: ") + curl_url_strerror(rc));
    char* scheme = nullptr;
    if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme)
        return fail("not a valid URL: no scheme");
    std::string s = scheme;
    curl_free(scheme);
    if (s != "http" && s != "https" && s != "file")
        return fail("unsupported URL scheme '" + s + "' (http, https and file are)");
    return {};
}

Result<Got> get(const Request& r) {
    global_init();
    int fd = ::open(r.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (r.resume ? 0 : O_TRUNC), 0644);
    if (fd < 0) return fail(errno_message("open '" + r.path + "'", errno));
    struct Close {
        int fd;
        ~Close() { ::close(fd); }
    } close_fd{fd};
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) return fail(errno_message("seek '" + r.path + "'", errno));

    Got got;
    got.resumed_from = static_cast<uint64_t>(end);
    Outcome o = perform(r, fd, got.resumed_from);
    if (got.resumed_from > 0 && !o.error && cannot_resume(o)) {
        if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0)
            return fail(errno_message("truncate '" + r.path + "'", errno));
        got.resumed_from = 0;
        got.restarted = true;
        o = perform(r, fd, 0);
    }
    if (o.error) std::rethrow_exception(o.error);
    if (o.write_errno) return fail(errno_message("write '" + r.path + "'", o.write_errno));
    if (o.status >= 400) return fail(r.url + ": " + describe_status(o));
    if (o.code != CURLE_OK) return fail(r.url + ": " + o.message);
    if (o.status != 0 && (o.status < 200 || o.status >= 300)) return fail(r.url + ": " + describe_status(o));
    return got;
}

} // namespace ib::http
