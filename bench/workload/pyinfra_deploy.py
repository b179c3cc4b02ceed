# The bench workload (bench/run) for pyinfra: the same 20 operations as apim-provision.yaml and
# ansible.yml. Host data: bench_root, bench_host, bench_port.
import os

from pyinfra import host
from pyinfra.operations import files

here = os.path.dirname(os.path.abspath(__file__))
root = host.data.bench_root
name = host.data.bench_host
port = host.data.bench_port
owner = {"user": "root", "group": "root"}

for label, sub, mode in (
    ("root", "", "755"),
    ("etc", "/etc", "755"),
    ("conf.d", "/conf.d", "755"),
    ("bin", "/bin", "755"),
    ("data", "/data", "750"),
):
    files.directory(name=f"{label} dir", path=root + sub, mode=mode, **owner)
files.directory(name="spool dir", path=root + "/spool", mode="770", user="nobody", group="nogroup")

for src, dest, mode in (
    ("motd", "etc/motd", "644"),
    ("limits.conf", "etc/limits.conf", "644"),
    ("healthcheck.sh", "bin/healthcheck.sh", "755"),
    ("logging.properties", "conf.d/logging.properties", "640"),
    ("seed.csv", "data/seed.csv", "640"),
):
    files.put(name=src, src=os.path.join(here, "files", src), dest=f"{root}/{dest}", mode=mode, **owner)

for src, dest, mode in (
    ("app.conf.j2", "etc/app.conf", "644"),
    ("node.env.j2", "etc/node.env", "600"),
    ("service.ini.j2", "conf.d/service.ini", "644"),
    ("status.json.j2", "data/status.json", "644"),
):
    files.template(
        name=src,
        src=os.path.join(here, "templates", src),
        dest=f"{root}/{dest}",
        mode=mode,
        bench_host=name,
        bench_port=port,
        **owner,
    )

settings = root + "/etc/settings.conf"
files.file(name="settings.conf", path=settings, mode="644", **owner)
for key, value in (
    ("listen_port", port),
    ("log_level", "info"),
    ("node_name", name),
    ("max_connections", 256),
):
    files.line(name=f"settings {key}", path=settings, line=f"^{key}=.*$", replace=f"{key}={value}")
