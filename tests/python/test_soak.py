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


def _series(fds, rss=None, threads=None):
    n = len(fds)
    rss = rss or [300 << 20] * n
    threads = threads or [1] * n
    return [{"fds": f, "rss": r, "threads": t} for f, r, t in zip(fds, rss, threads)]


def test_the_flatness_criterion_catches_leaks_and_not_noise():
    sys.path.insert(0, str(SOAK.parent))
    from soak import flat

    warm = 4
    # A low sample at the end of warm-up, then the usual one-up-one-down noise: flat.
    noisy = [22, 21, 20, 19] + [20, 21, 20, 19, 20, 21] * 4
    assert flat(_series(noisy), warm, 1e6)[0]
    # One descriptor opened once and kept (the second CI failure): flat.
    assert flat(_series([19] * 4 + [19] * 10 + [20] * 10), warm, 1e6)[0]
    # One descriptor more every second round: not flat.
    leak = [20] * warm + [20 + i // 2 for i in range(24)]
    assert not flat(_series(leak), warm, 1e6)[0]
    # A thread more every third round: not flat.
    assert not flat(_series([20] * 28, threads=[1] * warm + [1 + i // 3 for i in range(24)]), warm, 1e6)[0]
    # RSS rising by 1 MB a round, delivered 1 MB a round (allowance 1% of it): not flat;
    # the same rise spread as noise within the first half only: flat.
    mb = 1 << 20
    rising = [300 * mb] * warm + [300 * mb + i * mb for i in range(24)]
    ok, verdict = flat(_series([20] * 28, rss=rising), warm, mb)
    assert not ok and abs(verdict["rss_slope_bytes_per_round"] - mb) < 1e-6 * mb
    jitter = [300 * mb] * warm + [300 * mb + (i % 2) * 5 * mb for i in range(24)]
    assert flat(_series([20] * 28, rss=jitter), warm, mb)[0]
