"""Cell sets whose features are an obsm matrix (`SetLoader(obsm=key)`), with the counts of
the same cells beside them (`counts=True`), compared with anndata's own `obsm[key]` and
`layers["counts"]` rows for the delivered `pert_rows` / `ctrl_rows`: two plates per case,
written by anndata as h5ad (plain and gzip-chunked) and zarr (v2, v3 sharded zip); obsm
dense float32 (chunked across rows and columns), dense float64 and CSR."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from test_obsm import WRITERS, read_ref

FORMATS = ["h5ad", "h5ad-gzip", "zarr2", "zarr3-sharded-zip"]
KEYS = ["X_hvg", "X_pca", "X_sparse"]


def _plate(plate: int, seed: int) -> ad.AnnData:
    """Wells of one drug each, cells of a well contiguous, two cell lines per well."""
    rng = np.random.default_rng(seed)
    obs = []
    for well, drug in enumerate(["DMSO", "drugA", "drugB", "DMSO", "drugC"]):
        for line in rng.choice(["L1", "L2"], size=int(rng.integers(18, 30))):
            obs.append((drug, line, f"P{plate}", f"P{plate}_W{well}"))
    obs = pd.DataFrame(obs, columns=["drug", "cell_line", "plate", "well"]).astype("category")
    obs.index = [f"p{plate}_{i}" for i in range(len(obs))]
    n = len(obs)
    counts = sp.random(n, 40, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    counts.data = np.ceil(counts.data * 9)
    a = ad.AnnData(X=counts.copy(), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(40)]))
    a.X.data = np.log1p(a.X.data)  # X log-normalized, counts in a layer, as STATE's inputs
    a.layers["counts"] = counts
    a.obsm["X_hvg"] = rng.random((n, 300), dtype=np.float32)
    a.obsm["X_pca"] = rng.standard_normal((n, 12))  # float64
    a.obsm["X_sparse"] = sp.random(n, 25, density=0.2, format="csr", dtype=np.float32,
                                   random_state=seed + 1)
    return a


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    out = {}
    for fmt in FORMATS:
        d = tmp_path_factory.mktemp(fmt)
        paths = [WRITERS[fmt](_plate(p, seed=p + 7), d / f"plate{p}") for p in (1, 2)]
        out[fmt] = ([str(p) for p in paths], [read_ref(p) for p in paths])
    return out


def _whole(refs, get) -> np.ndarray:
    parts = [get(r) for r in refs]
    dense = [p.toarray() if sp.issparse(p) else np.asarray(p) for p in parts]
    return np.concatenate(dense).astype(np.float32)


PERT = cellfeed.Perturbation("drug", control=["DMSO"], context="cell_line", batch="plate",
                             match=[["plate"], []], unseen={"test": ["drugC"]},
                             controls_from_lower_splits=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_obsm_features_and_counts_match_anndata(screens, fmt):
    paths, refs = screens[fmt]
    counts = _whole(refs, lambda r: r.layers["counts"])
    for key in KEYS:
        want = _whole(refs, lambda r: r.obsm[key])
        for split in ("train", "test"):
            loader = cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, split=split, seed=1,
                                        obsm=key, counts=True, layer="counts", output="numpy")
            n = 0
            for b in loader:
                assert b.pert_X.dtype == np.float32 and b.pert_X.shape == b.pert_rows.shape + (want.shape[1],)
                np.testing.assert_array_equal(b.pert_X, want[b.pert_rows])
                np.testing.assert_array_equal(b.ctrl_X, want[b.ctrl_rows])
                np.testing.assert_array_equal(b.pert_counts, counts[b.pert_rows])
                np.testing.assert_array_equal(b.ctrl_counts, counts[b.ctrl_rows])
                n += b.pert_rows.size
            assert n >= sum(loader.groups.query("split == @split")["cells"])


def test_x_features_unchanged_and_genes_select_counts(screens):
    paths, refs = screens["h5ad"]
    x = _whole(refs, lambda r: r.X)
    counts = _whole(refs, lambda r: r.layers["counts"])
    b = next(iter(cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, output="numpy")))
    assert b.pert_counts is None and b.ctrl_counts is None
    np.testing.assert_array_equal(b.pert_X, x[b.pert_rows])
    assert "pert_cell_counts" not in b.as_cell_load()
    genes = ["g7", "g0", "g33"]
    b = next(iter(cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, obsm="X_pca", counts=True,
                                     genes=genes, layer="counts", output="numpy")))
    np.testing.assert_array_equal(b.pert_counts, counts[b.pert_rows][..., [7, 0, 33]])
    np.testing.assert_array_equal(b.ctrl_counts, counts[b.ctrl_rows][..., [7, 0, 33]])


def test_cell_load_fields_and_torch(screens):
    import torch

    paths, refs = screens["zarr2"]
    pca = _whole(refs, lambda r: r.obsm["X_pca"])
    counts = _whole(refs, lambda r: r.X)  # the matrix opened: X here
    b = next(iter(cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, obsm="X_pca", counts=True)))
    assert isinstance(b.pert_X, torch.Tensor) and isinstance(b.ctrl_counts, torch.Tensor)
    d = b.as_cell_load()
    rows_p, rows_c = b.pert_rows.reshape(-1), b.ctrl_rows.reshape(-1)
    np.testing.assert_array_equal(d["pert_cell_emb"].numpy(), pca[rows_p])
    np.testing.assert_array_equal(d["ctrl_cell_emb"].numpy(), pca[rows_c])
    np.testing.assert_array_equal(d["pert_cell_counts"].numpy(), counts[rows_p])
    np.testing.assert_array_equal(d["ctrl_cell_counts"].numpy(), counts[rows_c])


def test_bad_obsm_declarations(screens, tmp_path):
    paths, _ = screens["h5ad"]
    other = _plate(3, seed=3)
    del other.obsm["X_pca"]
    other.obsm["X_csc"] = sp.csc_matrix(other.obsm["X_sparse"])
    p3 = WRITERS["h5ad"](other, tmp_path / "plate3")
    with pytest.raises(ValueError, match=r"plate3\.h5ad: obsm/X_pca: missing"):
        cellfeed.SetLoader([*paths, str(p3)], PERT, set_size=8, sets_per_batch=3, obsm="X_pca")
    with pytest.raises(ValueError, match=r"obsm/X_csc: csc_matrix is not read"):
        cellfeed.SetLoader(str(p3), PERT, set_size=8, sets_per_batch=3, obsm="X_csc")
    with pytest.raises(ValueError, match=r"counts=True .* without obsm="):
        cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, counts=True)
    with pytest.raises(ValueError, match=r"genes= needs counts=True"):
        cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, obsm="X_pca", genes=["g1"])
    with pytest.raises(TypeError, match="obsm must be"):
        cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, obsm=["X_pca"])
    a = cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3, obsm="X_pca")
    b = cellfeed.SetLoader(paths, PERT, set_size=8, sets_per_batch=3)
    with pytest.raises(ValueError, match="another configuration"):
        b.load_state_dict(a.state_dict())


def test_obsm_through_a_corpus_and_dataloader_workers(screens):
    import torch

    paths, refs = screens["h5ad-gzip"]
    pca = _whole(refs, lambda r: r.obsm["X_pca"])
    drug = np.concatenate([r.obs["drug"].astype(str).to_numpy() for r in refs])
    corpus = cellfeed.Corpus([cellfeed.Source("screen", paths, where="drug != 'drugB'")])
    loader = cellfeed.SetLoader(corpus, PERT, set_size=8, sets_per_batch=3, obsm="X_pca", counts=True)
    direct = list(loader)
    assert not any("drugB" in b.pert_names for b in direct)
    workers = list(torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2))
    assert len(workers) == len(direct)
    for a, b in zip(direct, workers):
        np.testing.assert_array_equal(a.pert_rows, b.pert_rows)
        np.testing.assert_array_equal(b.pert_X.numpy(), pca[b.pert_rows])
        np.testing.assert_array_equal(b.ctrl_X.numpy(), pca[b.ctrl_rows])
        np.testing.assert_array_equal(a.ctrl_counts.numpy(), b.ctrl_counts.numpy())
        assert (drug[b.pert_rows] != "drugB").all()
