# 50000 nested lists: yaml-cpp's depth guard must answer, not the stack.
python3 -c "print('base: {dir: base}\nvars: ' + '['*50000 + ']'*50000 + '\noutputs: [{tar: {path: root.tar}}]')" > recipe.yaml
