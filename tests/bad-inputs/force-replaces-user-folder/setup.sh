mkdir -p out/backup.tar/old
