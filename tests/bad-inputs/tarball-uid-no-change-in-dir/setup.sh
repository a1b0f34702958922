# A member owned by uid 4294967295, (uid_t)-1: chown's "leave unchanged".
python3 - <<'PY'
import io, tarfile
with tarfile.open("base.tar", "w", format=tarfile.PAX_FORMAT) as t:
    info = tarfile.TarInfo("etc/hostname")
    info.size = 2
    info.uid = 4294967295
    t.addfile(info, io.BytesIO(b"x\n"))
PY
