mkdir -p out/backup.tar/photos
echo precious > out/backup.tar/photos/cat.jpg
