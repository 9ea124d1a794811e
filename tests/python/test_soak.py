"""The soak's smoke form (bench/soak.py --smoke) in a fresh process: many loaders, loaders
started and dropped, DataLoader workers; threads, descriptors and RSS flat after warm-up
(the script's own derived tolerance; no timing)."""

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_soak_smoke_stays_flat():
    r = subprocess.run([sys.executable, str(SOAK), "--smoke"], capture_output=True, text=True,
                       timeout=1800)
    lines = r.stdout.splitlines()
    assert lines, r.stderr[-3000:]
    verdict = json.loads(lines[-1])
    assert verdict.get("rounds", 0) >= 24, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.returncode == 0 and verdict["flat"], verdict
