"""One `vmmu run --json` for the bench scripts (mmu_table.py, ksm_table.py, evict_table.py)."""
import json
import os
import subprocess
import sys


def run(vmmu, workload, params=(), extra=()):
    """The run's JSON object; exits with the command and its error if it fails."""
    cmd = [vmmu, "run", workload, "--json"] + list(extra)
    for p in params:
        cmd += ["--param", p]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(cmd)} failed: "
                 f"{out.stderr.strip()}")
    return json.loads(out.stdout)
