mkfifo me.pub
