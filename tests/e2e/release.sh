#!/usr/bin/env bash
# End-to-end: ci/release.sh on a tiny recipe (a folder base made here, with a dpkg status and a
# Raspberry Pi OS-like boot folder; a tarball, an SD image with a cloud-init seed on its boot
# partition, netboot trees for two nodes), twice, from different folders, umasks and TMPDIRs:
#   - both dist/ folders are byte-identical except the signatures;
#   - SHA256SUMS.asc (a throwaway gpg key, in a GNUPGHOME of its own) verifies in a keyring that holds
#     the public key only, SHA256SUMS.sig (a throwaway signify key, when signify-openbsd is installed)
#     with the public key file, and sha256sum -c passes;
#   - every JSON file parses (jq); the manifest says what --version says, hashes the recipe file as
#     sha256sum does, lists the artifact files with their sizes and sha256, the partition table with
#     the PARTUUIDs cmdline.txt uses, and the packages of the dpkg status (config-files ones left out);
#   - the SPDX 2.3 SBOMs and os_list.json pass JSON schemas written HERE from the SPDX 2.3 spec's
#     required fields and from Raspberry Pi Imager's os_list fields (neither official schema is
#     packaged in Debian, nor an SPDX validator): what is checked is listed in the schemas below;
#   - os_list.json's sizes and sha256 are those of the .img.xz and of the image inside it, and the
#     image with the seed on its boot partition says init_format: cloudinit-rpi;
#   - the trees tarball unpacks (GNU tar, as README says) with the nodes' shared files as hardlinks.
# A third run without SOURCE_DATE_EPOCH takes the epoch from the checkout's last commit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/common.sh"
e2e_args "$@"
need_root "netboot outputs write real owners"
need_tools jq xz zstd tar gpg python3 sha256sum bsdtar
python3 -c 'import jsonschema' 2> /dev/null || { echo "SKIP: python3-jsonschema is not installed"; exit 77; }
REPO=$(cd "$HERE/../.." && pwd)
fail() { echo "FAIL - $*" >&2; exit 1; }

W=$(mktemp -d /tmp/imgbuild-e2e-release.XXXXXX)
trap 'gpgconf --homedir "$W/gnupg" --kill all 2> /dev/null || true; gpgconf --homedir "$W/verify" --kill all 2> /dev/null || true; rm -rf "$W"' EXIT

# The base: just enough of a Debian root for every output and the package list.
P=$W/project
B=$P/base
mkdir -p "$B/etc" "$B/boot/firmware" "$B/var/lib/dpkg" "$B/usr/bin"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$B/etc/passwd"
printf 'root:x:0:\n' > "$B/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$B/etc/shadow"
chmod 640 "$B/etc/shadow"
echo 'console=serial0,115200 root=PARTUUID=00000000-02 rootfstype=ext4 rootwait' > "$B/boot/firmware/cmdline.txt"
printf '[all]\narm_64bit=1\n' > "$B/boot/firmware/config.txt"
printf 'PARTUUID=00000000-01 /boot/firmware vfat defaults 0 2\nPARTUUID=00000000-02 / ext4 defaults 0 1\n' > "$B/etc/fstab"
cat > "$B/var/lib/dpkg/status" << 'EOF'
Package: base-files
Status: install ok installed
Priority: required
Architecture: arm64
Version: 12.4+deb12u5

Package: libc6
Status: install ok installed
Architecture: arm64
Multi-Arch: same
Version: 2.36-9+deb12u4

Package: oldpkg
Status: deinstall ok config-files
Architecture: arm64
Version: 1:1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 1:2024a-0+deb12u1
EOF
printf '#!/bin/sh\n' > "$B/usr/bin/tool"
chmod 755 "$B/usr/bin/tool"
find "$B" -exec touch -h -d @1600000000 {} +
cat > "$P/tiny.yaml" << 'EOF'
name: tiny
base: {dir: base}
nodes:
  - {name: n1, mac: "b8:27:eb:00:00:01", ip: 10.0.0.21/24}
  - {name: n2, mac: "b8:27:eb:00:00:02", ip: 10.0.0.22/24}
steps:
  - locale: C.UTF-8
  - files: {content: "tiny\n", dest: /etc/motd}
  - cloud_init:
      user_data_inline: "#cloud-config\nlocale: C.UTF-8\n"
      location: boot
      schema_check: false
  - hostname: {name: "{{node.name}}"}
outputs:
  - tar: {path: tiny-rootfs.tar.zst}
  - sdimage: {path: tiny.img.zst, boot_size: 32, headroom: 8}
  - netboot: {server: 10.0.0.1}
EOF

# A throwaway signing key, in a keyring of its own.
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-generate-key 'imgbuild release test <release@imgbuild.invalid>' ed25519 sign never 2> /dev/null
key=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$key" ] || fail "could not make a throwaway gpg key"

version=$("$IMGBUILD" --version | awk '{print $2}')
release() { # DIST [env argument...]: ci/release.sh on the recipe, its output in $W/log
  local dist=$1
  shift
  env -u IMGBUILD_GPG_KEY "$@" IMGBUILD="$IMGBUILD" bash "$REPO/ci/release.sh" --out "$dist" "$P/tiny.yaml" \
    > "$W/log" 2>&1 || { cat "$W/log" >&2; fail "ci/release.sh failed (above)"; }
}
t0=$(date +%s.%N)
signify=()
if command -v signify-openbsd > /dev/null; then
  signify-openbsd -G -n -p "$W/signify.pub" -s "$W/signify.sec" -c "imgbuild release test"
  signify=(IMGBUILD_SIGNIFY_KEY="$W/signify.sec")
fi
(cd "$P" && release "$W/one/dist" SOURCE_DATE_EPOCH=1700000000 IMGBUILD_GPG_KEY="$key" "${signify[@]}")
t1=$(date +%s.%N)
echo "ok: release.sh in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
grep -q 'gpg --verify SHA256SUMS.asc SHA256SUMS' "$W/log" || fail "release.sh did not print the verify command: $(tail -n 3 "$W/log")"
if [ ${#signify[@]} -gt 0 ]; then
  grep -q 'signify-openbsd -V -p KEY.pub -x SHA256SUMS.sig -m SHA256SUMS' "$W/log" ||
    fail "release.sh did not print the signify verify command: $(tail -n 3 "$W/log")"
fi
mkdir -p "$W/tmp2"
(cd "$W/tmp2" && umask 077 && release "$W/two/dist" SOURCE_DATE_EPOCH=1700000000 IMGBUILD_GPG_KEY="$key" TMPDIR="$W/tmp2")
D=$W/one/dist
R=$D/tiny-$version
[ -d "$R" ] || fail "no $R: $(ls "$D")"

# 1. Two runs, the same bytes (but the signatures, which carry their own time).
diff -r --no-dereference -x SHA256SUMS.asc -x SHA256SUMS.sig "$D" "$W/two/dist" > "$W/diff" ||
  fail "two runs differ: $(head -n 5 "$W/diff")"
n=$(find "$D" -type f ! -name '*.asc' ! -name '*.sig' | wc -l)
echo "ok: two runs give the same $n files, byte for byte"
for want in tiny.img.xz tiny.img.zst tiny.img.bmap tiny-rootfs.tar.zst tiny-trees.tar.zst \
  tiny.manifest.json tiny.spdx.json tiny-rootfs.manifest.json tiny-rootfs.spdx.json tiny-trees.manifest.json tiny-trees.spdx.json; do
  [ -s "$R/$want" ] || fail "no $want in $R: $(ls "$R")"
done

# 2. The signature, with the public key only; the sums.
export GNUPGHOME=$W/verify
mkdir -m 700 "$GNUPGHOME"
gpg --homedir "$W/gnupg" --batch --export --armor "$key" 2> /dev/null | gpg --batch --quiet --import > /dev/null 2>&1
[ -z "$(gpg --batch --with-colons --list-secret-keys)" ] || fail "the verifying keyring holds a secret key"
(cd "$D" && gpg --batch --verify SHA256SUMS.asc SHA256SUMS) 2> "$W/verify.log" || fail "gpg --verify failed: $(cat "$W/verify.log")"
(cd "$D" && sha256sum --quiet -c SHA256SUMS) || fail "sha256sum -c SHA256SUMS failed"
[ "$(wc -l < "$D/SHA256SUMS")" = "$((n - 1))" ] || fail "SHA256SUMS lists $(wc -l < "$D/SHA256SUMS") files, dist has $((n - 1)) besides it"
if [ ${#signify[@]} -gt 0 ]; then
  (cd "$D" && signify-openbsd -V -q -p "$W/signify.pub" -x SHA256SUMS.sig -m SHA256SUMS) ||
    fail "signify-openbsd -V failed on SHA256SUMS.sig"
  { cat "$D/SHA256SUMS"; echo "0000  forged"; } > "$W/forged"
  ! signify-openbsd -V -q -p "$W/signify.pub" -x "$D/SHA256SUMS.sig" -m "$W/forged" 2> /dev/null ||
    fail "signify-openbsd accepted SHA256SUMS.sig for another SHA256SUMS"
  echo "ok: SHA256SUMS.sig verified with the signify public key"
else
  echo "note: signify-openbsd is not installed: the signify signature is not tested"
fi
echo "0 tampered" >> "$R/tiny.manifest.json"
! (cd "$D" && sha256sum --quiet -c SHA256SUMS > /dev/null 2>&1) || fail "sha256sum -c missed a changed file"
cp "$W/two/dist/tiny-$version/tiny.manifest.json" "$R/"
echo "ok: SHA256SUMS.asc verified with the public key alone; SHA256SUMS covers every file"

# 3. The manifests.
for f in "$D"/*.json "$R"/*.json; do jq empty "$f" || fail "$f is not JSON"; done
M=$R/tiny.manifest.json
j() { jq -r "$1" "$M"; }
[ "$(j .imgbuild.version)" = "$version" ] || fail "manifest version $(j .imgbuild.version), --version says $version"
[ "$(j .recipe.name)" = tiny ] || fail "manifest recipe name $(j .recipe.name)"
[ "$(j '.recipe.files[0].sha256')" = "$(sha256sum < "$P/tiny.yaml" | cut -d' ' -f1)" ] || fail "recipe sha256 $(j '.recipe.files[0].sha256')"
[ "$(j .base.kind)/$(j .base.path)" = "dir/$P/base" ] || fail "base $(j -c .base)"
[ "$(j .epoch.seconds)" = 1700000000 ] || fail "epoch $(j .epoch.seconds)"
[ "$(j '[.steps[].type] | join(",")')" = "locale,files,cloud_init,hostname" ] || fail "steps $(j '[.steps[].type]')"
[ "$(j '.steps[3].per_node')/$(j '.steps[3].options.name')" = "true/{{node.name}}" ] || fail "hostname step $(j -c '.steps[3]')"
[ "$(j '[.outputs[].type] | join(",")')" = "tar,sdimage,netboot" ] || fail "outputs $(j '[.outputs[].type]')"
[ "$(j '[.nodes[].fields.ip] | join(",")')" = "10.0.0.21/24,10.0.0.22/24" ] || fail "nodes $(j -c .nodes)"
[ "$(j '[.packages[] | "\(.name)=\(.version):\(.architecture)"] | join(" ")')" = \
  "base-files=12.4+deb12u5:arm64 libc6=2.36-9+deb12u4:arm64 tzdata=1:2024a-0+deb12u1:all" ] ||
  fail "packages $(j -c .packages)"
for row in $(j '.artifact.files[] | "\(.path)=\(.size)=\(.sha256)"'); do
  IFS="=" read -r path size sha <<< "$row"
  [ "$(stat -c %s "$R/$path")=$(sha256sum < "$R/$path" | cut -d' ' -f1)" = "$size=$sha" ] || fail "artifact $path: manifest says $size $sha"
done
[ "$(j '[.artifact.files[].path] | join(",")')" = "tiny.img.xz,tiny.img.zst,tiny.img.bmap" ] || fail "artifact files $(j -c .artifact.files)"
raw=$W/tiny.img
xz -dc "$R/tiny.img.xz" > "$raw"
[ "$(j .artifact.extract_size)=$(j .artifact.extract_sha256)" = "$(stat -c %s "$raw")=$(sha256sum < "$raw" | cut -d' ' -f1)" ] ||
  fail "extract size/sha256 in the manifest are not the image's"
cmp -s "$raw" <(zstd -dc "$R/tiny.img.zst") || fail "tiny.img.xz and tiny.img.zst hold different images"
root_partuuid=$(j '.partitions.partitions[] | select(.use == "root") | .partuuid')
[ -n "$root_partuuid" ] && [ "$(j '.partitions.partitions | length')" = 2 ] || fail "partitions $(j -c .partitions)"
"$IMGBUILD" cat "$raw:/boot/firmware/cmdline.txt" | grep -q "root=PARTUUID=$root_partuuid " ||
  fail "the manifest's root PARTUUID $root_partuuid is not cmdline.txt's"
[ "$(jq -r '.packages | length' "$R/tiny-trees.manifest.json")" = 3 ] || fail "trees manifest packages"
[ "$(jq -r '.artifact.packages_from' "$R/tiny-trees.manifest.json")" = nfs/n1 ] || fail "trees packages_from"
[ "$(jq -r '.packages | length' "$R/tiny-rootfs.manifest.json")" = 3 ] || fail "rootfs manifest packages"
echo "ok: manifests: version, recipe sha256, base, epoch, steps, outputs, nodes, packages, artifact files, PARTUUIDs"

# 4. SPDX 2.3 and os_list.json against the schemas written here.
python3 - "$R" "$D/os_list.json" << 'EOF'
import glob, json, sys
import jsonschema

nonempty = {"type": "string", "minLength": 1}
sha256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
spdxid = {"type": "string", "pattern": "^SPDXRef-[A-Za-z0-9.-]+$"}
# SPDX 2.3, clauses 6 (document creation: all mandatory fields), 7 (package: name, SPDXID,
# downloadLocation mandatory; checksums, purl external references in their formats) and 11
# (relationships).
spdx = {
    "type": "object",
    "required": ["spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo"],
    "properties": {
        "spdxVersion": {"const": "SPDX-2.3"},
        "dataLicense": {"const": "CC0-1.0"},
        "SPDXID": {"const": "SPDXRef-DOCUMENT"},
        "name": nonempty,
        "documentNamespace": {"type": "string", "pattern": "^[a-z]+://[^#]+$"},
        "creationInfo": {
            "type": "object", "required": ["created", "creators"],
            "properties": {
                "created": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"},
                "creators": {"type": "array", "minItems": 1,
                             "items": {"type": "string", "pattern": "^(Tool|Organization|Person): .+"}},
            },
        },
        "documentDescribes": {"type": "array", "items": spdxid},
        "packages": {"type": "array", "items": {
            "type": "object", "required": ["SPDXID", "name", "downloadLocation"],
            "properties": {
                "SPDXID": spdxid, "name": nonempty, "versionInfo": nonempty,
                "downloadLocation": nonempty, "filesAnalyzed": {"type": "boolean"},
                "checksums": {"type": "array", "items": {"type": "object", "required": ["algorithm", "checksumValue"],
                              "properties": {"algorithm": {"const": "SHA256"}, "checksumValue": sha256}}},
                "externalRefs": {"type": "array", "items": {
                    "type": "object", "required": ["referenceCategory", "referenceType", "referenceLocator"],
                    "properties": {"referenceCategory": {"enum": ["SECURITY", "PACKAGE-MANAGER", "PERSISTENT-ID", "OTHER"]},
                                   "referenceLocator": {"type": "string", "pattern": "^pkg:deb/debian/[^@]+@[^?]+\\?arch=[a-z0-9]+$"}}}},
                "primaryPackagePurpose": {"enum": ["APPLICATION", "FRAMEWORK", "LIBRARY", "CONTAINER", "OPERATING-SYSTEM",
                                                   "DEVICE", "FIRMWARE", "SOURCE", "ARCHIVE", "FILE", "INSTALL", "OTHER"]},
            },
        }},
        "relationships": {"type": "array", "items": {
            "type": "object", "required": ["spdxElementId", "relationshipType", "relatedSpdxElement"],
            "properties": {"spdxElementId": spdxid, "relatedSpdxElement": spdxid,
                           "relationshipType": {"enum": ["DESCRIBES", "CONTAINS"]}}}},
    },
}
# Raspberry Pi Imager's os_list entries for an image to download (the fields its repository JSON
# carries for every image).
os_list = {
    "type": "object", "required": ["os_list"],
    "properties": {"os_list": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["name", "description", "url", "extract_size", "extract_sha256",
                     "image_download_size", "image_download_sha256", "release_date"],
        "properties": {
            "name": nonempty, "description": nonempty, "url": {"type": "string", "pattern": "\\.img\\.xz$"},
            "extract_size": {"type": "integer", "minimum": 1}, "extract_sha256": sha256,
            "image_download_size": {"type": "integer", "minimum": 1}, "image_download_sha256": sha256,
            "release_date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            "init_format": {"enum": ["cloudinit-rpi", "systemd"]},
        },
        "additionalProperties": False,
    }}},
}
files = sorted(glob.glob(sys.argv[1] + "/*.spdx.json"))
assert len(files) == 3, files
for f in files:
    doc = json.load(open(f))
    jsonschema.validate(doc, spdx)
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)), f + ": SPDXIDs repeat"
    for r in doc["relationships"]:
        for k in ("spdxElementId", "relatedSpdxElement"):
            assert r[k] in ids or r[k] == "SPDXRef-DOCUMENT", f"{f}: relationship to unknown {r[k]}"
    assert set(doc["documentDescribes"]) <= set(ids)
    assert len(doc["packages"]) == 4, f"{f}: {len(doc['packages'])} packages, expected the artifact and 3"
jsonschema.validate(json.load(open(sys.argv[2])), os_list)
print("ok: %d SPDX 2.3 documents and os_list.json pass the schemas" % len(files))
EOF
grep -q '"referenceLocator": "pkg:deb/debian/tzdata@1%3A2024a-0%2Bdeb12u1?arch=all"' "$R/tiny.spdx.json" ||
  fail "tzdata's purl is not percent-encoded: $(grep -o 'pkg:deb/debian/tzdata[^"]*' "$R/tiny.spdx.json")"
o() { jq -r ".os_list[0].$1" "$D/os_list.json"; }
[ "$(o url)" = "tiny-$version/tiny.img.xz" ] || fail "os_list url $(o url)"
[ "$(o image_download_size)=$(o image_download_sha256)" = "$(stat -c %s "$R/tiny.img.xz")=$(sha256sum < "$R/tiny.img.xz" | cut -d' ' -f1)" ] ||
  fail "os_list download size/sha256 are not tiny.img.xz's"
[ "$(o extract_size)=$(o extract_sha256)" = "$(stat -c %s "$raw")=$(sha256sum < "$raw" | cut -d' ' -f1)" ] ||
  fail "os_list extract size/sha256 are not the image's"
[ "$(o init_format)" = cloudinit-rpi ] || fail "init_format $(o init_format), the image has its seed in /boot/firmware"
[ "$(o release_date)" = 2023-11-14 ] || fail "release_date $(o release_date)"
echo "ok: os_list.json: url, sizes and sha256 of the download and the image, init_format, release_date"

# 5. The trees tarball unpacks with the nodes' shared files as hardlinks, owners and modes kept.
mkdir "$W/srv"
zstd -dc "$R/tiny-trees.tar.zst" | tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C "$W/srv"
[ "$(stat -c %i "$W/srv/nfs/n1/usr/bin/tool")" = "$(stat -c %i "$W/srv/nfs/n2/usr/bin/tool")" ] ||
  fail "nfs/n1 and nfs/n2 do not share usr/bin/tool as a hardlink after unpacking"
[ "$(stat -c %a "$W/srv/nfs/n1/etc/shadow")" = 640 ] || fail "etc/shadow mode $(stat -c %a "$W/srv/nfs/n1/etc/shadow")"
grep -q '^n2$' "$W/srv/nfs/n2/etc/hostname" || fail "nfs/n2/etc/hostname: $(cat "$W/srv/nfs/n2/etc/hostname")"
[ -s "$W/srv/netboot/dnsmasq.conf" ] && [ -d "$W/srv/tftp/b8-27-eb-00-00-02" ] || fail "netboot/ or tftp/ missing: $(ls "$W/srv")"
echo "ok: the trees tarball unpacks with hardlinks shared between nodes"

# 6. Without SOURCE_DATE_EPOCH: the commit time of the checkout's HEAD.
if commit_time=$(git -C "$REPO" log -1 --format=%ct HEAD 2> /dev/null); then
  (cd "$P" && release "$W/three/dist" -u SOURCE_DATE_EPOCH)
  e=$(jq -r .epoch.seconds "$W/three/dist/tiny-$version/tiny.manifest.json")
  [ "$e" = "$commit_time" ] || fail "epoch without SOURCE_DATE_EPOCH is $e, HEAD's commit time is $commit_time"
  [ ! -e "$W/three/dist/SHA256SUMS.asc" ] || fail "signed without IMGBUILD_GPG_KEY"
  echo "ok: without SOURCE_DATE_EPOCH the epoch is HEAD's commit time ($e); no key, no signature"
fi
