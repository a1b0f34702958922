mkfifo containerd-1.7.20-linux-arm64.tar.gz runc.arm64
