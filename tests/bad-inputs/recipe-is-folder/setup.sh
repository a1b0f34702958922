mkdir folder.yaml
