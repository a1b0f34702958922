mkdir -p out
ln -s /etc/passwd out/a.tar
