# Members without their folders: ./usr/ and ./usr/share/ are implied, and get the build's epoch.
python3 - <<'PY'
import io, tarfile
with tarfile.open("base.tar", "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in [("etc/hostname", b"x\n"), ("usr/share/doc/a", b"a\n")]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 1600000000
        t.addfile(info, io.BytesIO(data))
PY
