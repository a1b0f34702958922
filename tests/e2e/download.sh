#!/usr/bin/env bash
# End-to-end: `base: {tarball: http://...}` through a small HTTP server on 127.0.0.1 (python3's
# http.server with a handler that honours Range requests, logs every request with its Range header,
# and can be told to cut a response short). Checks:
#   - a first build downloads the tarball into the cache as downloads/<sha256>; a second build sends
#     no request at all;
#   - a download cut at half fails (exit 1) with a message naming the URL, and leaves a .part of half
#     the size; the next build asks for the rest (Range: bytes=HALF-) and succeeds, leaving no .part;
#   - HTTP 404 and a refused connection: exit 1, the URL and the reason in the message, nothing cached;
#   - a wrong sha256 pin: exit 1, both sums in the message, nothing left in the cache;
#   - a URL without sha256: exit 2 at the base's line:col before any request; with --insecure it is
#     built, and downloaded again on every build (downloads-unpinned/<sha256 of the URL>).
# Only 127.0.0.1 is contacted. The server stops by itself after a while and is killed on exit.
#
# usage: bash tests/e2e/download.sh path/to/imgbuild
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools python3 tar bsdtar sha256sum timeout

export LC_ALL=C.UTF-8
W=$(mktemp -d /tmp/imgbuild-e2e-download.XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2> /dev/null || true; wait "$SERVER_PID" 2> /dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

# shellcheck source=lib/report.sh
. "$HERE/lib/report.sh"

# ---------------------------------------------------------------------------------------------
# The server: serves $W/www; every request is one line "GET /path range=<Range header or ->" in
# $W/requests.log; when $W/cut holds a number N, a response body stops after N bytes and the
# connection is closed (Content-Length still announces the whole body).
cat > "$W/server.py" << 'EOF'
import http.server, os, re, sys

root, log_path, port_path, cut_path = sys.argv[1:5]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        rng = self.headers.get("Range")
        with open(log_path, "a") as log:
            log.write("GET %s range=%s\n" % (self.path, rng or "-"))
        path = os.path.join(root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404, "Not Found")
            return
        data = open(path, "rb").read()
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = int(open(cut_path).read()) if os.path.exists(cut_path) else None
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
EOF

mkdir -p "$W/www" "$W/base/etc" "$W/base2/etc" "$W/t"
: > "$W/requests.log"
timeout 300 python3 "$W/server.py" "$W/www" "$W/requests.log" "$W/port" "$W/cut" 2> "$W/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
[ -s "$W/port" ] || { echo "FAIL: the test server did not start: $(cat "$W/server.err")" >&2; exit 1; }
PORT=$(cat "$W/port")
URL=http://127.0.0.1:$PORT
echo "server: $URL (pid $SERVER_PID)"

# Two small rootfs tarballs, a few hundred KiB each, with different contents.
echo one > "$W/base/etc/hostname"
head -c 300000 /dev/urandom > "$W/base/etc/blob"
echo two > "$W/base2/etc/hostname"
head -c 400000 /dev/urandom > "$W/base2/etc/blob"
tar --numeric-owner -cf "$W/www/base.tar" -C "$W/base" .
tar --numeric-owner -cf "$W/www/base2.tar" -C "$W/base2" .
SHA=$(sha256sum < "$W/www/base.tar" | cut -d' ' -f1)
SHA2=$(sha256sum < "$W/www/base2.tar" | cut -d' ' -f1)
SIZE2=$(stat -c %s "$W/www/base2.tar")
HALF=$((SIZE2 / 2))

export IMGBUILD_CACHE=$W/cache
requests() { grep -c "^GET $1 " "$W/requests.log" || true; }
recipe() { # NAME BASE-MAP: writes $W/NAME.yaml
  printf 'base: %s\noutputs:\n  - tar: {path: rootfs.tar}\n' "$2" > "$W/$1.yaml"
}
run() { # EXPECTED_EXIT LABEL ARGS...: stderr in $W/t/err
  local want=$1 label=$2 rc=0
  shift 2
  rm -rf "$W/out"
  timeout 120 "$IMGBUILD" "$@" --out "$W/out" > "$W/t/stdout" 2> "$W/t/err" || rc=$?
  if [ "$rc" = "$want" ]; then ok "$label: exit $rc"; else fail "$label: exit $rc, want $want; stderr:" && sed 's/^/       /' "$W/t/err" >&2; fi
}
err_has() { # LABEL TEXT
  if grep -qF -- "$2" "$W/t/err"; then ok "$1: message has '$2'"; else fail "$1: message lacks '$2'; stderr: $(cat "$W/t/err")"; fi
}
cached() { (cd "$W/cache/$1" 2> /dev/null && ls -A | grep -v '\.lock$' | sort | tr '\n' ' ') || true; }

# --- first build downloads, second does not
recipe pinned "{tarball: '$URL/base.tar', sha256: $SHA}"
run 0 "first build" "$W/pinned.yaml"
[ -f "$W/cache/downloads/$SHA" ] && ok "first build: the cache holds downloads/$SHA" || fail "first build: no downloads/$SHA in the cache ($(cached downloads))"
cmp -s "$W/cache/downloads/$SHA" "$W/www/base.tar" && ok "first build: the cached file is the served tarball" || fail "first build: cached file differs from the served tarball"
[ "$(cached downloads)" = "$SHA $SHA.sum " ] && ok "first build: nothing else in downloads/ but the record of its sha256" || fail "first build: downloads/ holds: $(cached downloads)"
[ "$(requests /base.tar)" = 1 ] && ok "first build: one request" || fail "first build: $(requests /base.tar) requests"
if bsdtar -xOf "$W/out/rootfs.tar" ./etc/hostname 2> /dev/null | grep -qx one; then ok "first build: rootfs.tar has the base's /etc/hostname"; else fail "first build: rootfs.tar lacks the base's /etc/hostname"; fi
run 0 "second build" "$W/pinned.yaml"
[ "$(requests /base.tar)" = 1 ] && ok "second build: no request (still 1)" || fail "second build: the server saw $(requests /base.tar) requests, want 1"

# --- an interrupted download leaves a .part; the next build resumes it
echo "$HALF" > "$W/cut"
recipe resume "{tarball: '$URL/base2.tar', sha256: $SHA2}"
run 1 "download cut at half" "$W/resume.yaml"
err_has "download cut at half" "$URL/base2.tar: "
err_has "download cut at half" "the next build resumes"
part=$W/cache/downloads/$SHA2.part
[ -f "$part" ] && [ "$(stat -c %s "$part")" = "$HALF" ] && ok "download cut at half: $SHA2.part holds $HALF bytes" ||
  fail "download cut at half: .part is $(stat -c %s "$part" 2> /dev/null || echo missing), want $HALF bytes"
[ ! -e "$W/cache/downloads/$SHA2" ] && ok "download cut at half: no entry for the pin" || fail "download cut at half: downloads/$SHA2 exists"
rm -f "$W/cut"
run 0 "resumed build" "$W/resume.yaml"
if grep -qxF "GET /base2.tar range=bytes=$HALF-" "$W/requests.log"; then ok "resumed build: asked for Range bytes=$HALF-"; else fail "resumed build: no Range request; log: $(grep base2 "$W/requests.log" | tr '\n' ';')"; fi
cmp -s "$W/cache/downloads/$SHA2" "$W/www/base2.tar" && ok "resumed build: the cached file is the whole tarball" || fail "resumed build: cached file differs"
[ ! -e "$part" ] && ok "resumed build: no .part left" || fail "resumed build: .part left"
if bsdtar -xOf "$W/out/rootfs.tar" ./etc/hostname 2> /dev/null | grep -qx two; then ok "resumed build: rootfs.tar has the base's /etc/hostname"; else fail "resumed build: rootfs.tar lacks the base's /etc/hostname"; fi

# --- HTTP 404, a refused connection
before=$(cached downloads)
recipe missing "{tarball: '$URL/missing.tar', sha256: $(printf 'missing' | sha256sum | cut -d' ' -f1)}"
run 1 "404" "$W/missing.yaml"
err_has "404" "$URL/missing.tar: HTTP 404"
[ "$(cached downloads)" = "$before" ] && ok "404: nothing added to the cache" || fail "404: the cache now holds: $(cached downloads)"
FREE=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
recipe refused "{tarball: 'http://127.0.0.1:$FREE/base.tar', sha256: $(printf 'refused' | sha256sum | cut -d' ' -f1)}"
run 1 "connection refused" "$W/refused.yaml"
err_has "connection refused" "http://127.0.0.1:$FREE/base.tar: "
[ "$(cached downloads)" = "$before" ] && ok "connection refused: nothing added to the cache" || fail "connection refused: the cache now holds: $(cached downloads)"

# --- a wrong pin
WRONG=$(printf 'wrong' | sha256sum | cut -d' ' -f1)
rm -rf "$W/cache"
recipe wrong "{tarball: '$URL/base.tar', sha256: $WRONG}"
run 1 "wrong sha256" "$W/wrong.yaml"
err_has "wrong sha256" "$URL/base.tar: sha256 is $SHA, but the recipe pins $WRONG"
[ -z "$(cached downloads)" ] && ok "wrong sha256: nothing left in the cache (lock files aside)" || fail "wrong sha256: the cache holds: $(cached downloads)"

# --- no pin
n=$(requests /base.tar)
recipe unpinned "{tarball: '$URL/base.tar'}"
run 2 "no sha256" "$W/unpinned.yaml"
[ "$(cat "$W/t/err")" = "$W/unpinned.yaml:1:7: base: a URL needs a sha256 pin (or run with --insecure)" ] &&
  ok "no sha256: the message is FILE:1:7: base: a URL needs a sha256 pin (or run with --insecure)" || fail "no sha256: stderr: $(cat "$W/t/err")"
[ "$(requests /base.tar)" = "$n" ] && ok "no sha256: no request" || fail "no sha256: the server was asked"
run 2 "validate, no sha256" validate "$W/unpinned.yaml"
run 0 "validate --insecure" validate "$W/unpinned.yaml" --insecure
run 0 "build --insecure" "$W/unpinned.yaml" --insecure
KEY=$(printf '%s' "$URL/base.tar" | sha256sum | cut -d' ' -f1)
cmp -s "$W/cache/downloads-unpinned/$KEY" "$W/www/base.tar" && ok "build --insecure: downloads-unpinned/<sha256 of the URL> holds the tarball" ||
  fail "build --insecure: no downloads-unpinned/$KEY ($(cached downloads-unpinned))"
err_has "build --insecure" "its sha256 is $SHA"
run 0 "build --insecure again" "$W/unpinned.yaml" --insecure
[ "$(requests /base.tar)" = $((n + 2)) ] && ok "build --insecure again: downloaded again (2 requests)" || fail "build --insecure: $(( $(requests /base.tar) - n )) requests, want 2"

finish download
