// URL transfers (http, https, file) with libcurl: the only place that includes curl headers.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace ib::http {

// Whether `url` parses as a URL and its scheme is http, https or file; the failure says why
// ("unsupported URL scheme 'ftp' (http, https and file are)").
Result<void> check_url(const std::string& url);

struct Request {
    std::string url;
    std::string path;    // the host file the body goes into; created when missing
    bool resume = false; // keep what `path` holds and ask only for the rest (HTTP Range)
    long connect_timeout_s = 30;
    // A transfer slower than low_speed_bytes per second for low_speed_s seconds is given up.
    long low_speed_bytes = 1024;
    long low_speed_s = 60;
    // Called as bytes arrive with the bytes in `path` so far and the whole size (0 when unknown). It
    // may throw (Ctrl-C): the transfer stops, and the exception comes out of get().
    std::function<void(uint64_t done, uint64_t total)> progress;
};

struct Got {
    uint64_t resumed_from = 0; // bytes of `path` kept from before; 0 when it started from the beginning
    bool restarted = false;    // a resume was asked for but the server could not continue: started over
};

// Fetches `request.url` into `request.path`. Redirects are followed (to http and https only); TLS
// certificates are always verified. A failure names the URL and the reason: "HTTP 404 Not Found" or
// curl's own message ("Failed to connect to 127.0.0.1 port 9: Connection refused"). Whatever arrived
// before a failure stays in `path` (so that a later call can resume); an HTTP error's page never does.
Result<Got> get(const Request& request);

} // namespace ib::http
