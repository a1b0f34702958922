#!/usr/bin/env bash
# The CI files (.github/workflows/ci.yml, release.yml, .gitlab-ci.yml) pass yamllint (Debian's; no
# workflow schema or actionlint is packaged), and say what the README says they do: the test job runs
# on push and pull/merge requests, the release job on v* tags; every command is a script in ci/ that
# exists (but the one step that gives a GitHub container git before the checkout); nothing asks for
# privileges (--privileged, devices, KVM, loop devices, mounts).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/common.sh"
e2e_args "$@"
need_tools yamllint python3
python3 -c 'import yaml' 2> /dev/null || { echo "SKIP: python3-yaml is not installed"; exit 77; }
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
files=(.github/workflows/ci.yml .github/workflows/release.yml .gitlab-ci.yml)
yamllint -s -d '{extends: default, rules: {line-length: {max: 120}, truthy: {check-keys: false}, document-start: disable}}' "${files[@]}" ||
  { echo "FAIL - yamllint (above)" >&2; exit 1; }
echo "ok: yamllint: ${files[*]}"
python3 - "${files[@]}" << 'PY'
import os, re, sys, yaml

def fail(msg):
    print("FAIL - " + msg, file=sys.stderr)
    sys.exit(1)

# The only command allowed besides `bash ci/NAME.sh ...`: giving a bare Debian container git.
bootstrap = "apt-get update -qq && apt-get install -y -qq --no-install-recommends git ca-certificates"
script = re.compile(r"^bash (ci/[a-z0-9-]+\.sh)( [^;&|`$()<>]*)?$")

def check_command(where, cmd):
    cmd = cmd.strip()
    if cmd == bootstrap:
        return
    m = script.match(cmd)
    if not m:
        fail(f"{where}: '{cmd}' is not a script in ci/")
    if not os.path.isfile(m.group(1)):
        fail(f"{where}: {m.group(1)} does not exist")

forbidden = re.compile(r"privileged|/dev/kvm|--device|losetup|\bmount\b|cap-add|kvm", re.I)
for f in sys.argv[1:]:
    text = open(f).read()
    if forbidden.search(re.sub(r"(?m)^\s*#.*$", "", text)):
        fail(f"{f}: asks for privileges: {forbidden.search(text).group(0)}")

def github(f):
    doc = yaml.safe_load(open(f))
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    jobs = doc["jobs"]
    for name, job in jobs.items():
        assert job.get("container", {}).get("image") == "debian:12", f"{f}: job {name} not on debian:12"
        assert "options" not in job.get("container", {}), f"{f}: job {name} passes container options"
        for i, step in enumerate(job["steps"]):
            if "uses" in step:
                continue
            check_command(f"{f}: job {name} step {i + 1}", step["run"])
    return on, jobs

on, jobs = github(".github/workflows/ci.yml")
if not ("push" in on and "pull_request" in on):
    fail(f"ci.yml runs on {on}, not on push and pull_request")
if not any("bash ci/test.sh" == s.get("run") for j in jobs.values() for s in j["steps"]):
    fail("ci.yml does not run bash ci/test.sh")
on, jobs = github(".github/workflows/release.yml")
if on != {"push": {"tags": ["v*"]}}:
    fail(f"release.yml runs on {on}, not on v* tags only")
runs = [s.get("run", "") for j in jobs.values() for s in j["steps"]]
if not any(r.startswith("bash ci/release.sh --out dist") for r in runs):
    fail("release.yml does not run ci/release.sh --out dist")
if not any("dist/" in str(s.get("with", {}).get("files", "")) for j in jobs.values() for s in j["steps"]):
    fail("release.yml does not upload dist/")

gl = yaml.safe_load(open(".gitlab-ci.yml"))
assert gl["default"]["image"] == "debian:12"
for name in ("test", "release"):
    if name not in gl:
        fail(f".gitlab-ci.yml has no job {name}")
    for i, cmd in enumerate(gl[name]["script"]):
        check_command(f".gitlab-ci.yml: job {name} line {i + 1}", cmd)
if gl["test"]["script"] != ["bash ci/test.sh"]:
    fail(".gitlab-ci.yml's test job is not bash ci/test.sh")
if [r["if"] for r in gl["release"]["rules"]] != ["$CI_COMMIT_TAG =~ /^v/"]:
    fail(".gitlab-ci.yml's release job does not run on v* tags only")
if "dist/" not in gl["release"]["artifacts"]["paths"]:
    fail(".gitlab-ci.yml's release job keeps no dist/")
print("ok: triggers, jobs, only scripts in ci/ (all present), no privileges")
PY
