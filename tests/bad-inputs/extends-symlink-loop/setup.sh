ln -s loop.yaml loop.yaml
