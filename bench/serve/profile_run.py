"""``python -m bench serving --profile [KEY]``: py-spy on a calibserve server under wrk load, top frames.

Samples the server's whole process tree (``--subprocesses``: workers, any shipper) while one wrk thread
drives KEY at c=8, batch 1, and only the thread holding the GIL (``--gil``): on a shared 2-core machine a
thread waiting for a CPU looks busy to py-spy, and the GIL is what a Python fast path and an in-process
log writer compete for. Native work that releases the GIL (onnxruntime's kernels) is therefore left out.
py-spy (a dev dependency) attaches with ptrace: run as root or with
``kernel.yama.ptrace_scope=0``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.serve import servers
from bench.serve import wrk as wrk_run
from bench.serve.bodies import write_bodies
from bench.serve.model import build
from bench.serve.profile import format_frames, top_frames


def profile(key: str, duration: int, root: Path) -> int:
    from bench.serving import TARGETS, calibserve_server

    target = next((t for t in TARGETS if t.key == key), None)
    if target is None or target.server not in ("calibserve-sqlite", "calibserve-2-workers"):
        print(f"--profile takes a calibserve SQLite target (e, f-json, f-binary, f-json-2w), not {key!r}",
              file=sys.stderr)
        return 2
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    seconds = max(duration, 5)
    with tempfile.TemporaryDirectory(prefix="calibserve-profile-") as tmp:
        work = Path(tmp)
        model = build(work)
        bodies = write_bodies(work, model.rows, (1,))
        lua = work / "post.lua"
        lua.write_text(wrk_run.LUA)
        server = calibserve_server(target.server, f"sqlite:///{work / 'profile.db'}", model.repository,
                                   workers=2 if target.server == "calibserve-2-workers" else 1, tree=root)
        servers.start(server, work / "server.log")
        try:
            wrk_run.run(server.base + target.path, bodies[target.body][1], 2, 1, lua)  # warm-up
            out = work / "profile.txt"
            load = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{seconds + 2}s", "--timeout", "10s", "-s", str(lua),
                                     "--latency",
                                     server.base + target.path], stdout=subprocess.PIPE, text=True,
                                    env=wrk_run.body_env(bodies[target.body][1]))
            time.sleep(1)  # let the load reach steady state before sampling
            subprocess.run([py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--gil", "--format", "raw",
                            "--duration", str(seconds), "--rate", "200", "--nonblocking", "--output", str(out)],
                           check=True, capture_output=True)
            report = wrk_run.parse(load.communicate()[0])
        finally:
            servers.stop(server)
        samples, by_self, by_total = top_frames(out.read_text(), n=15)
    print(f"py-spy on {target.label} under wrk c=8 batch 1 for {seconds} s: {report.rps:.0f} req/s, "
          f"p99 {report.p99_ms:.2f} ms (sampling slows the server: compare frames, not throughput)\n")
    print(format_frames(samples, by_self, by_total))
    return 0
