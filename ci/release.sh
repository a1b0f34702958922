#!/usr/bin/env bash
# The release job: every recipe built into signed, described, reproducible artifacts.
#
#   ci/release.sh [--out dist] [--set NAME=VALUE]... [RECIPE...]
#
# RECIPEs default to every top-level recipes/*.yaml with outputs (the sample base of
# ci/sample-base.sh is made first then). Each is built with a fixed epoch (SOURCE_DATE_EPOCH, else
# the commit time of HEAD) into DIST/<name>-<version>/:
#
#   NAME.img.xz          each SD image, xz -T2 (as Raspberry Pi OS publishes); NAME.img.zst kept when
#   NAME.img.zst         the recipe wrote one; NAME.img.bmap for bmaptool
#   NAME.tar.zst ...     each tarball output as written
#   RECIPE-trees.tar.zst the folders of dir and netboot outputs (TFTP trees, NFS roots, dnsmasq.conf,
#                        exports), one pax tarball keeping hardlinks, owners, modes and xattrs
#   STEM.manifest.json   per artifact: the recipe's manifest (imgbuild --manifest) plus the artifact's
#                        files, sizes and sha256, the SD image's partition table (imgbuild inspect
#                        --json) and the packages of its dpkg status
#   STEM.spdx.json       an SPDX 2.3 SBOM of the same packages
#
# and DIST/os_list.json (Raspberry Pi Imager's repository format; IMGBUILD_RELEASE_URL prefixes the
# image URLs, which are otherwise relative to DIST), DIST/SHA256SUMS over every file, and with
# IMGBUILD_GPG_KEY (a key id in gpg's keyring) DIST/SHA256SUMS.asc, with IMGBUILD_SIGNIFY_KEY (a
# signify secret key file without a passphrase) DIST/SHA256SUMS.sig. DIST is replaced only once all of
# it is written. Two runs on one commit give the same bytes (but the signatures).
#
# IMGBUILD: the imgbuild binary to use (default: build it into build/ as ci/demo.sh does).
# Runs as root for recipes with netboot or dir outputs (real owners); no loop device, mount, KVM or
# container privilege is used.
set -euo pipefail
# imgbuild makes the netboot folders (tftp/, nfs/, netboot/) and SD images' .bmap "less the umask":
# a release must not depend on the caller's.
umask 022

usage() { sed -n '4,5p' "$0" | sed 's/^# *//' >&2; exit 2; }
out=dist
sets=()
recipes=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --set) [ $# -ge 2 ] || usage; sets+=(--set "$2"); shift 2 ;;
    --set=*) sets+=(--set "${1#--set=}"); shift ;;
    -h | --help) usage ;;
    -*) echo "release: unknown option '$1'" >&2; usage ;;
    *) recipes+=("$1"); shift ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$out")
# Recipe paths are recorded as given: relative to the checkout, the same on every machine.
abs_recipes=()
for r in "${recipes[@]}"; do abs_recipes+=("$(realpath "$r")"); done
cd "$repo"
recipes=()
for r in "${abs_recipes[@]}"; do recipes+=("$(realpath --relative-base="$repo" "$r")"); done

source ci/deps.sh
imgbuild_install_deps git xz-utils zstd jq tar coreutils libarchive-tools
if [ -z "${IMGBUILD:-}" ]; then
  imgbuild_install_deps "${IMGBUILD_BUILD_DEPS[@]}"
  imgbuild_build > /dev/null
  IMGBUILD=$repo/build/builder/imgbuild
fi
IMGBUILD=$(realpath "$IMGBUILD")
version=$("$IMGBUILD" --version | awk '{print $2}')

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct HEAD 2> /dev/null) ||
    { echo "release: not a git checkout: set SOURCE_DATE_EPOCH" >&2; exit 2; }
fi
export SOURCE_DATE_EPOCH
release_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

if [ ${#recipes[@]} -eq 0 ]; then
  bash ci/sample-base.sh
  for r in recipes/*.yaml; do
    # "recipes/x.yaml: ok (N steps, N nodes, N outputs)"; a recipe that does not validate fails the
    # release rather than being left out of it.
    line=$("$IMGBUILD" validate "$r" "${sets[@]}") || { echo "release: $r does not validate (above)" >&2; exit 1; }
    [[ $line =~ \ 0\ outputs\)$ ]] || recipes+=("$r")
  done
fi
[ ${#recipes[@]} -gt 0 ] || { echo "release: no recipe with outputs" >&2; exit 2; }

mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.release-imgbuild-tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT
dist=$stage/dist
mkdir "$dist"
t_start=$(date +%s.%N)

# Prints the file PATH of an artifact's root: a raw disk image, a tarball, or a folder.
root_file() { # KIND SOURCE PATH
  case $1 in
    image) "$IMGBUILD" cat "$2:$3" 2> /dev/null || true ;;
    tar) bsdtar -xOf "$2" ".$3" 2> /dev/null || bsdtar -xOf "$2" "${3#/}" 2> /dev/null || true ;;
    dir) cat "$2$3" 2> /dev/null || true ;;
  esac
}

# The packages of a root as a JSON array of {name, version, architecture, status}, sorted by name:
# from dpkg's status (packages dpkg knows: not "not-installed", not only "config-files"). A root
# debootstrap --foreign left (the sample base) has an empty status: its /debootstrap/debpaths then
# names the packages it unpacked, each from its .deb's file name.
packages_json() { # KIND SOURCE
  local status
  status=$(root_file "$1" "$2" /var/lib/dpkg/status)
  local tsv
  tsv=$(awk -v RS= -F '\n' '{
      p = v = a = s = ""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Package: /) p = substr($i, 10)
        else if ($i ~ /^Version: /) v = substr($i, 10)
        else if ($i ~ /^Architecture: /) a = substr($i, 15)
        else if ($i ~ /^Status: /) s = substr($i, 9)
      }
      if (p != "" && s !~ / (not-installed|config-files)$/) print p "\t" v "\t" a "\t" s "\tdpkg status"
    }' <<< "$status")
  if [ -z "$tsv" ]; then
    tsv=$(root_file "$1" "$2" /debootstrap/debpaths | awk '{
        n = split($2, parts, "/"); f = parts[n]; sub(/\.deb$/, "", f)
        split(f, w, "_"); gsub(/%3a/, ":", w[2])
        print w[1] "\t" w[2] "\t" w[3] "\tunpacked, not configured\tdebootstrap/debpaths"
      }')
  fi
  jq -R -s -c 'split("\n") | map(select(length > 0) | split("\t")
      | {name: .[0], version: .[1], architecture: .[2], status: .[3], source: .[4]})
    | unique_by([.name, .architecture])' <<< "$tsv"
}

# An SPDX 2.3 document for one artifact: the artifact as the described package, containing one
# package per Debian package with its purl.
spdx_json() { # STEM ARTIFACT_FILE MANIFEST
  local sha
  sha=$(sha256sum "$2" | cut -d' ' -f1)
  jq -S --arg stem "$1" --arg file "$(basename "$2")" --arg sha "$sha" --arg version "$version" \
    --arg created "$created" '
    def spdxid: gsub("[^A-Za-z0-9.-]"; "-");
    .packages as $p
    | {
      spdxVersion: "SPDX-2.3",
      dataLicense: "CC0-1.0",
      SPDXID: "SPDXRef-DOCUMENT",
      name: ($stem + "-" + $version),
      documentNamespace: ("https://imgbuild.invalid/spdx/" + $stem + "-" + $version + "-" + $sha),
      creationInfo: {created: $created, creators: ["Tool: imgbuild-" + $version]},
      documentDescribes: ["SPDXRef-Artifact"],
      packages: ([{
        SPDXID: "SPDXRef-Artifact", name: $file, versionInfo: $version,
        packageFileName: $file, downloadLocation: "NOASSERTION", filesAnalyzed: false,
        checksums: [{algorithm: "SHA256", checksumValue: $sha}],
        licenseConcluded: "NOASSERTION", licenseDeclared: "NOASSERTION", copyrightText: "NOASSERTION",
        primaryPackagePurpose: "OPERATING-SYSTEM"
      }] + [$p | to_entries[] | .key as $i | .value | {
        SPDXID: ("SPDXRef-Package-" + ($i | tostring) + "-" + (.name | spdxid)),
        name: .name, versionInfo: .version, supplier: "NOASSERTION",
        downloadLocation: "NOASSERTION", filesAnalyzed: false,
        licenseConcluded: "NOASSERTION", licenseDeclared: "NOASSERTION", copyrightText: "NOASSERTION",
        externalRefs: [{referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
          referenceLocator: ("pkg:deb/debian/" + (.name | @uri) + "@" + (.version | @uri)
            + "?arch=" + (.architecture | @uri))}]
      }]),
      relationships: ([{spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES",
          relatedSpdxElement: "SPDXRef-Artifact"}]
        + [$p | to_entries[] | {spdxElementId: "SPDXRef-Artifact", relationshipType: "CONTAINS",
          relatedSpdxElement: ("SPDXRef-Package-" + (.key | tostring) + "-" + (.value.name | spdxid))}])
    }' "$3"
}

# Writes STEM.manifest.json and STEM.spdx.json for the artifact files FILE... (relative to the recipe's
# folder), whose root is KIND SOURCE. EXTRA is a JSON object merged into the artifact entry.
describe_artifact() { # STEM KIND SOURCE EXTRA FILE...
  local stem=$1 kind=$2 src=$3 extra=$4 first=$5
  shift 4
  local files='[]' f
  for f in "$@"; do
    files=$(jq -c --arg p "$f" --arg s "$(stat -c %s "$rdir/$f")" --arg h "$(sha256sum "$rdir/$f" | cut -d' ' -f1)" \
      '. + [{path: $p, size: ($s | tonumber), sha256: $h}]' <<< "$files")
  done
  local partitions=null
  # The image's path in inspect's output is the scratch copy's: name the artifact instead.
  [ "$kind" = image ] && partitions=$("$IMGBUILD" inspect "$src" --json | jq -c --arg p "$stem.img" '.path = $p')
  packages_json "$kind" "$src" > "$work/packages.json"
  jq -S --argjson files "$files" --argjson extra "$extra" --argjson partitions "$partitions" \
    --slurpfile packages "$work/packages.json" --arg stem "$stem" \
    '. + {artifact: ({name: $stem, files: $files} + $extra), partitions: $partitions, packages: $packages[0]}' \
    "$work/build.json" > "$rdir/$stem.manifest.json"
  spdx_json "$stem" "$rdir/$first" "$rdir/$stem.manifest.json" > "$rdir/$stem.spdx.json"
}

os_list='[]'
summary=()
for recipe in "${recipes[@]}"; do
  t0=$(date +%s.%N)
  work=$(mktemp -d "$stage/work.XXXXXX")
  "$IMGBUILD" "$recipe" "${sets[@]}" --dry-run --out "$work/out" --manifest "$work/plan.json" > /dev/null
  name=$(jq -r '.recipe.name' "$work/plan.json")
  rdir=$dist/$name-$version
  [ ! -e "$rdir" ] || { echo "release: two recipes are named '$name'" >&2; exit 1; }
  mkdir "$rdir"
  echo "release: $recipe -> $(basename "$rdir")/"
  "$IMGBUILD" "$recipe" "${sets[@]}" -q --out "$work/out" --manifest "$work/build.json"

  # The files the build listed in its SHA256SUMS (tar and sdimage outputs, bmaps, netboot's server
  # files); images and tarballs are artifacts of their own, everything else goes into the trees tarball.
  listed_text=$(jq -r '.files[].path' "$work/build.json")
  mapfile -t listed <<< "$listed_text"
  jq -S 'del(.files)' "$work/build.json" > "$work/build.json.tmp" && mv "$work/build.json.tmp" "$work/build.json"
  own=()
  for rel in "${listed[@]}"; do
    f=$work/out/$rel
    case $rel in
      *.img | *.img.xz | *.img.zst | *.img.gz)
        own+=("$rel")
        stem=${rel%.img*}
        raw=$work/raw.img
        case $rel in
          *.img) cp --sparse=always "$f" "$raw" ;;
          *.xz) xz -dc "$f" | dd of="$raw" conv=sparse bs=1M status=none ;;
          *.zst) zstd -q -d -f "$f" -o "$raw" ;;
          *.gz) gzip -dc "$f" | dd of="$raw" conv=sparse bs=1M status=none ;;
        esac
        mkdir -p "$(dirname "$rdir/$stem")"
        xz -T2 -6 -c "$raw" > "$rdir/$stem.img.xz"
        files=("$stem.img.xz")
        if [[ $rel == *.zst ]]; then cp "$f" "$rdir/$rel" && files+=("$rel"); fi
        if [ -f "$work/out/$stem.img.bmap" ]; then
          cp "$work/out/$stem.img.bmap" "$rdir/$stem.img.bmap" && files+=("$stem.img.bmap") && own+=("$stem.img.bmap")
        fi
        extract_size=$(stat -c %s "$raw")
        extract_sha=$(sha256sum "$raw" | cut -d' ' -f1)
        # Raspberry Pi Imager customises an image through cloud-init when the seed is on its boot
        # partition (where the firmware's FAT is mounted: /boot/firmware, or /boot on older images).
        init=""
        for b in /boot/firmware /boot; do
          if "$IMGBUILD" cat "$raw:$b/user-data" > /dev/null 2>&1 && "$IMGBUILD" cat "$raw:$b/meta-data" > /dev/null 2>&1; then
            init=cloudinit-rpi
            break
          fi
        done
        title=$name
        [ "$stem" = "$name" ] || title="$name $stem"
        describe_artifact "$stem" image "$raw" \
          "$(jq -n -c --arg s "$extract_size" --arg h "$extract_sha" '{extract_size: ($s | tonumber), extract_sha256: $h}')" "${files[@]}"
        os_list=$(jq -c --arg name "$title" --arg rel "$(basename "$rdir")/$stem.img.xz" \
          --arg url "${IMGBUILD_RELEASE_URL:+${IMGBUILD_RELEASE_URL%/}/}" --arg version "$version" \
          --arg es "$extract_size" --arg eh "$extract_sha" --arg ds "$(stat -c %s "$rdir/$stem.img.xz")" \
          --arg dh "$(sha256sum "$rdir/$stem.img.xz" | cut -d' ' -f1)" --arg date "$release_date" --arg init "$init" \
          --arg recipe "$recipe" '. + [{
            name: $name,
            description: "\($name) \($version), built by imgbuild from \($recipe)",
            url: ($url + $rel), extract_size: ($es | tonumber), extract_sha256: $eh,
            image_download_size: ($ds | tonumber), image_download_sha256: $dh, release_date: $date
          } + (if $init != "" then {init_format: $init} else {} end)]' <<< "$os_list")
        rm -f "$raw"
        ;;
      *.tar | *.tar.gz | *.tar.xz | *.tar.zst | *.tar.bz2)
        own+=("$rel")
        mkdir -p "$(dirname "$rdir/$rel")"
        cp "$f" "$rdir/$rel"
        describe_artifact "${rel%.tar*}" tar "$f" '{}' "$rel"
        ;;
    esac
  done

  # The rest (netboot's tftp/, nfs/, netboot/; dir outputs): one tarball. GNU tar keeps each hardlink
  # group as one file and links to it; mtimes newer than the epoch (folders the build moved into
  # place) are clamped to it.
  (cd "$work/out" && find . -mindepth 1 ! -path ./SHA256SUMS -printf '%P\n' | LC_ALL=C sort) > "$work/all"
  printf '%s\n' "${own[@]}" | LC_ALL=C sort > "$work/own"
  # Only what lies in folders: a top-level file the build did not list in SHA256SUMS is its own
  # bookkeeping (such as the record of what it wrote), not an output.
  LC_ALL=C comm -23 "$work/all" "$work/own" | while IFS= read -r p; do
    if [[ $p == */* ]] || [ -d "$work/out/$p" ]; then printf '%s\n' "$p"; fi
  done > "$work/rest"
  # (grep -c reads to the end: with -q, stat would die of SIGPIPE and pipefail would say "no files".)
  if [ "$(cd "$work/out" && xargs -r -d '\n' stat -c %F < "$work/rest" | grep -vc '^directory$' || true)" -gt 0 ]; then
    trees=$name-trees.tar.zst
    tar --numeric-owner --xattrs --xattrs-include='*' --acls --format=posix --no-recursion \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime -C "$work/out" -cf - --verbatim-files-from -T "$work/rest" |
      zstd -q -T2 -12 > "$rdir/$trees"
    # The packages of the first root found (every node's root comes from the same layers).
    root=$(grep -m1 '/var/lib/dpkg/status$' "$work/rest" || true)
    describe_artifact "$name-trees" dir "$work/out/${root%/var/lib/dpkg/status}" \
      "$(jq -n -c --arg r "${root%/var/lib/dpkg/status}" '{packages_from: $r}')" "$trees"
  fi
  rm -rf "$work"
  t1=$(date +%s.%N)
  summary+=("$(printf '%-28s %6.1f s  %s' "$(basename "$rdir")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$(du -sh --apparent-size "$rdir" | cut -f1)")")
done

jq -S -n --argjson l "$os_list" '{os_list: $l}' > "$dist/os_list.json"
(cd "$dist" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)

if [ -n "${IMGBUILD_GPG_KEY:-}" ]; then
  gpg --batch --yes --local-user "$IMGBUILD_GPG_KEY" --armor --detach-sign -o "$dist/SHA256SUMS.asc" "$dist/SHA256SUMS"
fi
if [ -n "${IMGBUILD_SIGNIFY_KEY:-}" ]; then
  imgbuild_install_deps signify-openbsd
  signify-openbsd -S -s "$IMGBUILD_SIGNIFY_KEY" -m "$dist/SHA256SUMS" -x "$dist/SHA256SUMS.sig"
fi

# Everything is written: replace DIST in one step (the old one is removed after).
if [ -e "$out" ]; then mv "$out" "$stage/old"; fi
mv "$dist" "$out"
t_end=$(date +%s.%N)

echo
echo "release $version (epoch $SOURCE_DATE_EPOCH, $release_date) in $out, $(printf '%.1f' "$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { print b - a }')") s:"
printf '  %s\n' "${summary[@]}"
(cd "$out" && find . -type f -printf '%s\t%P\n' | LC_ALL=C sort -k2 | awk -F'\t' '{ printf "    %12d  %s\n", $1, $2 }')
echo
if [ -f "$out/SHA256SUMS.asc" ]; then
  echo "verify (with the signer's public key imported):"
  echo "  cd $out && gpg --verify SHA256SUMS.asc SHA256SUMS && sha256sum -c SHA256SUMS"
fi
if [ -f "$out/SHA256SUMS.sig" ]; then
  echo "verify (with the signer's signify public key, KEY.pub):"
  echo "  cd $out && signify-openbsd -V -p KEY.pub -x SHA256SUMS.sig -m SHA256SUMS && sha256sum -c SHA256SUMS"
fi
if [ ! -f "$out/SHA256SUMS.asc" ] && [ ! -f "$out/SHA256SUMS.sig" ]; then
  echo "verify (unsigned: set IMGBUILD_GPG_KEY or IMGBUILD_SIGNIFY_KEY to sign):"
  echo "  cd $out && sha256sum -c SHA256SUMS"
fi
