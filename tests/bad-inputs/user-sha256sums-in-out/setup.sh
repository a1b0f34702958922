mkdir -p out
echo "0000  my-own-files.iso" > out/SHA256SUMS
