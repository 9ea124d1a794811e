"""cellfeed: fast, deterministic minibatch loading of AnnData files (.h5ad, zarr stores,
annbatch collections) for PyTorch.

The engine is C++ (pread + its own decoders on worker threads, libhdf5 only at open);
this package converts types and releases the GIL while the engine works.
"""

from ._version import __version__
from .collection import Collection, open, read_gene_list
from .corpus import Corpus, Source, Split
from .loader import Batch, Loader, worker_threads
from .perturb import Perturbation
from .set_loader import SetBatch, SetLoader
from .qc import qc_metrics
from .threads import split_cores
from . import inputs, vocab
from .vocab import map_genes

__all__ = ["Batch", "Collection", "Corpus", "Loader", "Perturbation", "SetBatch", "SetLoader", "Source",
           "Split", "inputs", "map_genes", "open", "qc_metrics", "read_gene_list", "split_cores", "vocab",
           "worker_threads", "__version__"]
