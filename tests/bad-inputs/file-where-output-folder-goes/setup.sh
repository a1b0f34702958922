mkdir -p out
echo "not a folder" > out/images
