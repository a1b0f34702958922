mkfifo r.yaml
