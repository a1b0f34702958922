mkfifo disk.img
