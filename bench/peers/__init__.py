"""Peer loaders for the cellfeed benchmark: one runner module per loader (``*_peer.py``),
each with ``make_iterator(paths, config)``; see common.py for the measuring harness."""

RUNNERS = ("scdataset", "annloader", "h5py", "cellfeed")

# Whether a runner uses torch DataLoader worker processes (num_workers > 0); the others
# are single-process loaders and ignore num_workers (their records say num_workers 0).
SUPPORTS_WORKERS = {"scdataset": True, "annloader": False, "h5py": False, "cellfeed": True}
