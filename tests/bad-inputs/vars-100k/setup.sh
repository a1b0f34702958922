# 100k vars, half of them using another (took 16-21 s to load, quadratic): must build quickly.
{
  echo 'base: {dir: base}'
  echo 'vars:'
  for ((i = 0; i < 100000; i += 2)); do echo "  v$i: value$i"; echo "  v$((i + 1)): \"x{{v$i}}\""; done
  echo 'steps: [{files: {content: "{{v99999}}\n", dest: /etc/v}}]'
  echo 'outputs: [{tar: {path: root.tar}}]'
} > recipe.yaml
mkdir -p base/etc
echo base > base/etc/hostname
