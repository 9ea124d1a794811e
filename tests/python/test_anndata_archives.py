"""anndata's own backwards-compatibility archives (data/anndata_archives, copied from
scverse/anndata tests/data/archives; see its notice), read by cellfeed and compared column by
column with what the installed anndata reads from the same file or store.

Every version there that wrote zarr (0.7.0, 0.7.8: zipped, and the same stores unzipped
into a directory) and every h5ad version (0.5.0, which is
data/legacy/pbmc68k_reduced_anndata05.h5ad, 0.7.0, 0.7.8): obs, var, raw/var, X, raw/X and
the layers. 0.11.4 wrote an AnnData without X, layers or raw (both formats): a clear
error. The 0.7 layout keeps a categorical as int8 codes whose `categories` attribute
names obs/__categories/<col>: the corpus and loader tests check that filters, class
balance, splits and batch.obs see the category values, not the codes. Also categoricals
written by the installed anndata (encoding-type categorical; ordered and not, string and
integer categories) in obs and var, zarr v2 and v3, directory and zip."""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

import cellfeed
from test_formats import assert_frames, assert_matrix

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = REPO / "data" / "anndata_archives"
ZARR_VERSIONS = ["v0.7.0", "v0.7.8"]  # and v0.11.4, an AnnData without X (see below)
H5AD = {
    "v0.5.0": REPO / "data" / "legacy" / "pbmc68k_reduced_anndata05.h5ad",
    **{v: ARCHIVES / v / "adata.h5ad" for v in ZARR_VERSIONS},
}


def _quiet(read, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read(*args)


def read_ref(path: Path) -> ad.AnnData:
    """The installed anndata's reading: read_zarr for stores (ZipStore for zips), else h5ad."""
    if path.suffix == ".h5ad":
        return _quiet(ad.read_h5ad, path)
    if path.is_file():
        return _quiet(ad.read_zarr, zarr.storage.ZipStore(str(path), mode="r"))
    return _quiet(ad.read_zarr, str(path))


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory):
    """Each zipped archive store extracted into a plain directory store."""
    out = {}
    for v in ZARR_VERSIONS:
        d = tmp_path_factory.mktemp(v.replace(".", "_")) / "adata.zarr"
        with zipfile.ZipFile(ARCHIVES / v / "adata.zarr.zip") as z:
            z.extractall(d)
        out[v] = d
    return out


def assert_like_anndata(path: Path, ref: ad.AnnData) -> None:
    col = cellfeed.open(str(path))
    assert_matrix(col, ref.X)
    assert_frames(col, ref)
    # Column by column, so a failure names the column and the dtype seen.
    for frame, got in ((ref.obs, col.obs()), (ref.var, col.var())):
        for name in frame.columns:
            assert got[name].dtype == frame[name].dtype, (path, name, got[name].dtype)
            pd.testing.assert_series_equal(got[name], frame[name].set_axis(got.index),
                                           check_names=False)
    for layer in ref.layers:
        assert_matrix(cellfeed.open(str(path), layer=layer), ref.layers[layer])
    if ref.raw is not None:
        raw = cellfeed.open(str(path), layer="raw")
        assert_matrix(raw, ref.raw.X)
        assert list(raw.var_names) == list(ref.raw.var_names)
        assert raw.var_columns == list(ref.raw.var.columns)
        want = ref.raw.var.rename_axis(None).reset_index(drop=True)
        pd.testing.assert_frame_equal(raw.var(), want.set_axis(raw.var().index))


def _categoricals(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]


@pytest.mark.parametrize("version", ZARR_VERSIONS)
def test_zipped_zarr_archive_matches_anndata(version):
    path = ARCHIVES / version / "adata.zarr.zip"
    ref = read_ref(path)
    if version.startswith("v0.7"):
        # The 0.7 layout holds categoricals in obs, var and raw/var, ordered and not.
        assert _categoricals(ref.obs) == ["obs_cat", "cat_ordered"]
        assert _categoricals(ref.var) == ["var_cat", "cat_ordered"]
        assert ref.obs.cat_ordered.cat.ordered and not ref.obs.obs_cat.cat.ordered
    assert_like_anndata(path, ref)


@pytest.mark.parametrize("version", ZARR_VERSIONS)
def test_unzipped_zarr_archive_matches_anndata(version, unzipped):
    assert_like_anndata(unzipped[version], read_ref(unzipped[version]))


@pytest.mark.parametrize("version", list(H5AD))
def test_h5ad_archive_matches_anndata(version):
    assert_like_anndata(H5AD[version], read_ref(H5AD[version]))


@pytest.mark.parametrize("name", ["adata.zarr.zip", "adata.h5ad"])
def test_archive_without_x_is_a_clear_error(name):
    """0.11.4's archive is AnnData(shape=(10, 20)): no X, layers or raw, nothing to load."""
    path = ARCHIVES / "v0.11.4" / name
    ref = read_ref(path)
    assert ref.X is None and not ref.layers and ref.raw is None and ref.shape == (10, 20)
    with pytest.raises(ValueError, match=r"adata\.(zarr\.zip|h5ad): X: missing"):
        cellfeed.open(str(path))


def test_same_data_in_zarr_and_h5ad_reads_the_same():
    """anndata 0.7 wrote one AnnData to both formats: cellfeed reads them alike."""
    for version in ("v0.7.0", "v0.7.8"):
        z = cellfeed.open(str(ARCHIVES / version / "adata.zarr.zip"))
        h = cellfeed.open(str(ARCHIVES / version / "adata.h5ad"))
        pd.testing.assert_frame_equal(z.obs(), h.obs())
        pd.testing.assert_frame_equal(z.var(), h.var())


# --------------------------------------------------------------------------------------
# Corpus declarations over the 0.7 zarr layout's categoricals

STORES = [ARCHIVES / v / "adata.zarr.zip" for v in ("v0.7.0", "v0.7.8")]


def _obs(paths) -> pd.DataFrame:
    return pd.concat([read_ref(p).obs for p in paths], ignore_index=True)


def test_corpus_filter_by_category_value():
    obs = _obs(STORES[:1])
    value = obs.obs_cat.value_counts().index[0]
    c = cellfeed.Corpus([cellfeed.Source("s", [str(STORES[0])], where=f"obs_cat == '{value}'")])
    np.testing.assert_array_equal(c.rows("train"), np.flatnonzero(obs.obs_cat == value))


def test_corpus_filter_over_files_with_different_categories():
    obs = _obs(STORES)
    refs = [read_ref(p).obs for p in STORES]
    values = [o.obs_cat.iloc[0] for o in refs]
    both = sorted(set(refs[0].cat_ordered) & set(refs[1].cat_ordered))[0]
    expr = "obs_cat in [" + ", ".join(f"'{v}'" for v in values) + f"] or cat_ordered == '{both}'"
    c = cellfeed.Corpus([cellfeed.Source("s", [str(p) for p in STORES], where=expr)])
    want = obs.obs_cat.isin(values) | (obs.cat_ordered == both)
    np.testing.assert_array_equal(c.rows("train"), np.flatnonzero(want))


def test_corpus_class_balance_by_category_value():
    obs = _obs(STORES[:1])
    classes = sorted(obs.obs_cat.unique())
    c = cellfeed.Corpus([cellfeed.Source("s", [str(STORES[0])], cells=2 * len(classes),
                                         balance_by="obs_cat", upsample=True)])
    labels = c.report(columns=["obs_cat"]).labels
    assert sorted(labels.value) == classes
    assert set(labels.target.astype(int)) == {2}
    loader = cellfeed.Loader(c, batch_size=8, block_size=1, fetch_factor=2)
    loader.set_epoch(0)
    rows = np.concatenate([np.asarray(b.rows) for b in loader])
    assert obs.obs_cat.iloc[rows].value_counts().to_dict() == {k: 2 for k in classes}


def test_corpus_split_by_category_value():
    obs = _obs(STORES[:1])
    val = sorted(obs.obs_cat.unique())[:2]
    c = cellfeed.Corpus([cellfeed.Source("s", [str(STORES[0])])],
                        split=cellfeed.Split(by="obs_cat", val=val))
    np.testing.assert_array_equal(c.rows("val"), np.flatnonzero(obs.obs_cat.isin(val)))
    np.testing.assert_array_equal(c.rows("train"), np.flatnonzero(~obs.obs_cat.isin(val)))


# --------------------------------------------------------------------------------------
# Categoricals as the installed anndata writes them (encoding-type categorical)


def _categorical_adata() -> ad.AnnData:
    rng = np.random.default_rng(7)
    n, g = 90, 12
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n)])
    obs["plain"] = pd.Categorical(rng.choice(["T", "B", "NK"], n),
                                  categories=["NK", "T", "B", "unused"])
    obs["grade"] = pd.Categorical(rng.choice(["low", "mid", "high"], n),
                                  categories=["low", "mid", "high"], ordered=True)
    obs["with_missing"] = pd.Categorical([None if i % 5 == 0 else f"d{i % 3}" for i in range(n)])
    obs["int_cats"] = pd.Categorical(rng.choice([3, 10, 42], n))
    var = pd.DataFrame(index=[f"g{i}" for i in range(g)])
    var["kind"] = pd.Categorical(rng.choice(["gene", "mito"], g), ordered=True)
    X = rng.poisson(1.0, (n, g)).astype(np.float32)
    return ad.AnnData(X=X, obs=obs, var=var)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("zipped", [False, True], ids=["directory", "zip"])
def test_modern_categoricals_match_anndata(tmp_path, fmt, zipped):
    a = _categorical_adata()
    d = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zarr.config.set({"default_zarr_format": fmt}):
            a.write_zarr(d)
    path = d
    if zipped:
        path = tmp_path / "a.zarr.zip"
        with zipfile.ZipFile(path, "w") as z:
            for f in sorted(d.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(d).as_posix())
        shutil.rmtree(d)
    ref = read_ref(path)
    assert _categoricals(ref.obs) == ["plain", "grade", "with_missing", "int_cats"]
    assert ref.obs.grade.cat.ordered and ref.var.kind.cat.ordered
    assert_like_anndata(path, ref)


def test_loader_labels_are_category_codes():
    """batch.obs holds codes into the collection's categories, which name anndata's values."""
    obs = _obs(STORES)
    loader = cellfeed.Loader([str(p) for p in STORES], batch_size=8, block_size=1,
                             fetch_factor=2, seed=0, obs=["obs_cat", "cat_ordered"],
                             output="numpy")
    loader.set_epoch(0)
    col = cellfeed.open([str(p) for p in STORES])
    refs = [read_ref(p).obs for p in STORES]
    for name in ("obs_cat", "cat_ordered"):
        want = set(refs[0][name].cat.categories) | set(refs[1][name].cat.categories)
        assert set(col.obs([name])[name].cat.categories) == want
    seen = 0
    for b in loader:
        for name in ("obs_cat", "cat_ordered"):
            cats = col.obs([name])[name].cat.categories
            np.testing.assert_array_equal(np.asarray(cats)[b.obs[name]],
                                          obs[name].iloc[b.rows].astype(str).to_numpy())
        seen += len(b)
    assert seen == len(obs)


@pytest.mark.parametrize("attrs, message", [
    ({"categories": "__categories/nope"}, r"obs/__categories/nope: missing categories"),
    ({"categories": 3}, r"obs/obs_cat: attribute 'categories' must be a string"),
    ({"categories": "/"}, r"obs/obs_cat: attribute 'categories' must name an array"),
])
def test_bad_categories_reference_is_a_clear_error(tmp_path, unzipped, attrs, message):
    store = tmp_path / "adata.zarr"
    shutil.copytree(unzipped["v0.7.8"], store)
    (store / "obs" / "obs_cat" / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ValueError, match=message):
        cellfeed.open(str(store))
