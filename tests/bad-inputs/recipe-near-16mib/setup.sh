# A 7.5 MB recipe of 120k steps (a 20 MB one took over 120 s): validates in seconds.
{
  echo 'base: {dir: base}'
  echo 'vars: {a: b}'
  echo 'steps:'
  for ((i = 0; i < 120000; i++)); do echo "  - files: {content: \"line $i {{a}}\", dest: /etc/f$i}"; done
  echo 'outputs: [{tar: {path: root.tar}}]'
} > recipe.yaml
mkdir -p base/etc
echo base > base/etc/hostname
