mkdir -p out/root/home
echo mine > out/root/home/notes
