# 100k vars, each the next one plus a letter: made here, 2 MB is too much for git.
{
  echo 'base: {dir: base}'
  echo 'vars:'
  echo '  v0: x'
  for ((i = 1; i < 100000; i++)); do echo "  v$i: \"{{v$((i - 1))}}y\""; done
  echo 'outputs: [{tar: {path: root.tar}}]'
} > recipe.yaml
mkdir -p base/etc
echo base > base/etc/hostname
