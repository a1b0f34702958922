# The identity .imgbuild-outputs records: inode.birth-ns, and for a file .size.mtime-ns.
ident() { stat -c '%i %.9W %s %.9Y %F' "$1" | tr -d . | awk '{ print $1 "." $2 ($5 == "directory" ? "" : "." $3 "." $4) }'; }
mkdir -p out/nfs/worker-1/etc out/nfs/worker-1/var/log out/nfs/.manifests out/nfs/.store
echo worker-1 > out/nfs/worker-1/etc/hostname
echo "a log line the node wrote" > out/nfs/worker-1/var/log/syslog
echo "# manifest" > out/nfs/.manifests/worker-1
{
  echo "netboot dir $(ident out/nfs/worker-1) nfs/worker-1"
  echo "netboot dir $(ident out/nfs/.store) nfs/.store"
  echo "netboot dir $(ident out/nfs/.manifests) nfs/.manifests"
} > out/.imgbuild-outputs
