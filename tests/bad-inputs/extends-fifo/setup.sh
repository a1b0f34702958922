mkfifo parent.yaml
