"""Runs inputs that crash or hang libhdf5 1.10 (fuzz/libhdf5-crashes) through cellfeed or
through anndata, in a subprocess of the test, writing what each read (or raised) into
OUT/<name>.npz / OUT/<name>.json:

    python libhdf5_inputs.py cellfeed|reference|heap OUT FILE...

(heap: h5py for numbers, hdf5_heap_reference.py for every string.)
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

# Each probe may take this long before its open is called a hang (the 60 s default would
# only make the test slower: these inputs hang for ever or fail at once).
OPEN_TIMEOUT = 5


def read_cellfeed(path: str) -> dict:
    import cellfeed
    c = cellfeed.open(path, threads=1, open_timeout=OPEN_TIMEOUT)
    x = c.read(np.arange(c.n_obs))
    obs = c.obs()
    return {"indptr": x.indptr, "indices": x.indices, "data": x.data,
            "shape": np.array(x.shape), "obs_names": np.array(list(c.obs_names()), dtype=object),
            "var_names": np.array(list(c.var_names), dtype=object),
            **{f"obs:{k}": np.asarray(obs[k].astype(str) if obs[k].dtype != float else obs[k])
               for k in obs.columns}}


def read_reference(path: str) -> dict:
    import anndata as ad
    import scipy.sparse as sp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(path)
    x = sp.csr_matrix(a.X, dtype=np.float32)
    return {"indptr": x.indptr, "indices": x.indices, "data": x.data,
            "shape": np.array(x.shape), "obs_names": np.array(list(a.obs_names), dtype=object),
            "var_names": np.array(list(a.var_names), dtype=object),
            **{f"obs:{k}": np.asarray(a.obs[k].astype(str) if a.obs[k].dtype != float else a.obs[k])
               for k in a.obs.columns}}


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "heap":
        sys.path.insert(0, str(Path(__file__).parent))
        from hdf5_heap_reference import read_with_heap_reference as read
    else:
        read = read_cellfeed if mode == "cellfeed" else read_reference
    for path in sys.argv[3:]:
        name = Path(path).name
        print(json.dumps({"start": name}), flush=True)
        try:
            arrays = read(path)
            np.savez(out / f"{name}.npz", **arrays)
            rec = {"name": name, "error": None}
        except Exception as e:  # noqa: BLE001 - what was raised is the result
            rec = {"name": name, "error": type(e).__name__,
                   "oserror": isinstance(e, OSError), "valueerror": isinstance(e, ValueError),
                   "message": str(e)}
        (out / f"{name}.json").write_text(json.dumps(rec))
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
