truncate -s 17M big.yaml
