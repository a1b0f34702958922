printf '%s\n%s\n' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+gHceS3PH/eo2km8HMbGf+E6P0qRcPhus0L8MbkJid me@laptop' '-----BEGIN OPENSSH PRIVATE KEY-----' > keys.pub
