"""Run pip cell-load's own data module on a TOML and write what it assigns and yields (JSON).

Run by tests/python/test_cell_load_splits.py with .venv-cellload's Python (cell-load 0.10.4),
never imported by the tests themselves:

    python cell_load_reference.py '{"pert_col": "drug", ...}' CONFIG.toml OUT.json [CONFIG2.toml OUT2.json ...]

For each split: the cells of its subsets (file stem and row, perturbed vs control, from the
subsets cell-load builds), and the cells its DataLoader yields in one pass (barcode=True
gives each perturbed cell's and its control's obs name), with the batch's field names,
shapes and dtypes.
"""

import json
import sys

import numpy as np
import torch

from cell_load.data_modules import PerturbationDataModule


def subsets(datasets):
    out = []
    for sub in datasets:
        ds = sub.dataset
        idx = np.asarray(sub.indices, dtype=np.int64)
        ctrl = ds.metadata_cache.control_mask[idx]
        out.append({"file": ds.h5_path.stem, "dataset": ds.name,
                    "pert": idx[~ctrl].tolist(), "ctrl": idx[ctrl].tolist()})
    return out


def field(v):
    if torch.is_tensor(v):
        return {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
    return {"type": type(v).__name__, "len": len(v)}


def main():
    kw = json.loads(sys.argv[1])
    for toml_path, out_path in zip(sys.argv[2::2], sys.argv[3::2]):  # one process: imports once
        run(toml_path, out_path, kw)


def run(toml_path, out_path, kw):
    dm = PerturbationDataModule(toml_path, num_workers=0, barcode=True, **kw)
    dm.setup()
    res = {"splits": {s: subsets(getattr(dm, f"{s}_datasets")) for s in ("train", "val", "test")},
           "yielded": {}, "fields": None,
           "vocab": {"perturbation": sorted(dm.pert_onehot_map), "cell_type": sorted(dm.cell_type_onehot_map),
                     "batch": sorted(dm.batch_onehot_map)}}
    loaders = {"train": dm.train_dataloader()}
    if dm.val_datasets:
        loaders["val"] = dm.val_dataloader()
    if dm.test_datasets:
        loaders["test"] = dm.test_dataloader()
    for split, loader in loaders.items():
        rows = []
        for batch in loader:
            if res["fields"] is None and split == "train":
                res["fields"] = {k: field(v) for k, v in batch.items()}
                res["first_batch"] = {k: v.tolist() if torch.is_tensor(v) else list(v)
                                      for k, v in batch.items() if k in ("pert_emb", "cell_type_onehot", "batch")}
                res["first_batch"].update({k: list(batch[k]) for k in ("pert_name", "cell_type", "batch_name")})
            for p, c, ct, pn in zip(batch["pert_cell_barcode"], batch["ctrl_cell_barcode"], batch["cell_type"],
                                    batch["pert_name"]):
                rows.append([str(p), str(c), str(ct), str(pn)])
        res["yielded"][split] = rows
    res["onehot_order"] = {"perturbation": list(dm.pert_onehot_map), "cell_type": list(dm.cell_type_onehot_map),
                           "batch": list(dm.batch_onehot_map)}
    with open(out_path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
