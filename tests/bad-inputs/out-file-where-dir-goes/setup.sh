# The identity .imgbuild-outputs records: inode.birth-ns, and for a file .size.mtime-ns.
ident() { stat -c '%i %.9W %s %.9Y %F' "$1" | tr -d . | awk '{ print $1 "." $2 ($5 == "directory" ? "" : "." $3 "." $4) }'; }
mkdir -p out
echo "old tarball" > out/a.tar
echo "the user's notes" > out/b
(cd out && sha256sum a.tar > SHA256SUMS)
echo "tar file $(ident out/a.tar) a.tar" > out/.imgbuild-outputs
echo "checksums file $(ident out/SHA256SUMS) SHA256SUMS" >> out/.imgbuild-outputs
