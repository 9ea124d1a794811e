"""An independent reader of an anndata file's variable-length strings, for inputs whose
global heap HDF5 2.0 refuses as a whole although the strings the file uses are intact.

libhdf5 1.10 (cellfeed's) and HDF5 2.0 (h5py's) differ on a global heap collection one of
whose objects claims to run past the collection's end: 1.10 reads the other objects, 2.0
refuses every string in the collection. To tell whether cellfeed's read of such a file is
correct, this reads the strings from the bytes, following the HDF5 file format
specification (III.E "Global Heap", IV.A.2.d "Datatype" for variable-length strings):
each stored element is (4-byte length, 8-byte collection address, 4-byte object index);
a collection is "GCOL", version 1, 3 reserved bytes, its 8-byte size, then objects of
(2-byte index, 2-byte reference count, 4 reserved, 8-byte size, data padded to 8 bytes),
ended by object 0 (free space). Every bound is checked: a string whose object lies outside
its collection, or a collection outside the file, is an error, never bytes.

Only what the regression inputs use is supported: 1-D contiguous datasets, and 1-D
chunked ones with the LZF, deflate or shuffle filters (h5py reads the chunks' raw bytes
with read_direct_chunk, which decodes no string). Numeric datasets are read by h5py as usual.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

LZF, DEFLATE, SHUFFLE = 32000, 1, 2


def lzf_decompress(src: bytes, limit: int) -> bytes:
    """LZF (liblzf's format, as h5py's filter stores it: no header)."""
    out = bytearray()
    i = 0
    while i < len(src):
        ctrl = src[i]
        i += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            n = ctrl + 1
            if i + n > len(src):
                raise ValueError("lzf: literal runs past the input")
            out += src[i:i + n]
            i += n
        else:  # a back reference
            n = ctrl >> 5
            if n == 7:
                n += src[i]
                i += 1
            back = ((ctrl & 0x1F) << 8) + src[i] + 1
            i += 1
            if back > len(out):
                raise ValueError("lzf: reference before the start")
            for _ in range(n + 2):
                out.append(out[-back])
        if len(out) > limit:
            raise ValueError("lzf: output larger than the chunk")
    return bytes(out)


def unshuffle(b: bytes, itemsize: int) -> bytes:
    a = np.frombuffer(b, dtype=np.uint8)
    n = len(a) // itemsize
    return a[: n * itemsize].reshape(itemsize, n).T.tobytes() + a[n * itemsize:].tobytes()


def raw_elements(dset, itemsize: int, data: bytes) -> bytes:
    """The stored bytes of a 1-D dataset's elements (contiguous, or chunked with filters
    undone); `data`: the file's bytes."""
    if len(dset.shape) != 1:
        raise ValueError(f"{dset.name}: only 1-D datasets are supported")
    if dset.chunks is None:
        offset = dset.id.get_offset()
        if offset is None or offset + dset.shape[0] * itemsize > len(data):
            raise ValueError(f"{dset.name}: contiguous storage outside the file")
        return data[offset:offset + dset.shape[0] * itemsize]
    plist = dset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    rows = dset.chunks[0]
    out = bytearray()
    for start in range(0, dset.shape[0], rows):
        mask, b = dset.id.read_direct_chunk((start,))
        for k in reversed(range(len(filters))):
            if mask & (1 << k):
                continue  # that filter was skipped for this chunk
            f = filters[k]
            if f == LZF:
                b = lzf_decompress(b, rows * itemsize)
            elif f == DEFLATE:
                b = zlib.decompress(b)
            elif f == SHUFFLE:
                b = unshuffle(b, itemsize)
            else:
                raise ValueError(f"{dset.name}: filter {f} not supported")
        out += b[: min(rows, dset.shape[0] - start) * itemsize]
    return bytes(out)


def heap_collection(data: bytes, address: int) -> dict[int, bytes | None]:
    """Objects of the collection at `address`: index -> bytes, or None for an object whose
    stated size runs past the collection (the corruption HDF5 2.0 refuses)."""
    if address + 16 > len(data) or data[address:address + 4] != b"GCOL" or data[address + 4] != 1:
        raise ValueError(f"no version-1 global heap collection at {address}")
    size = struct.unpack_from("<Q", data, address + 8)[0]
    end = address + size
    if end > len(data):
        raise ValueError(f"collection at {address}: size {size} runs past the file")
    objects: dict[int, bytes | None] = {}
    pos = address + 16
    while pos + 16 <= end:
        index, _refs, _reserved, length = struct.unpack_from("<HHIQ", data, pos)
        if index == 0:
            break
        if pos + 16 + length > end:
            objects[index] = None
            break
        objects[index] = data[pos + 16:pos + 16 + length]
        pos += 16 + (length + 7) // 8 * 8
    return objects


def vlen_strings(h5file, path: str, data: bytes) -> list[str]:
    raw = raw_elements(h5file[path], 16, data)
    heaps: dict[int, dict] = {}
    out = []
    for k in range(len(raw) // 16):
        length, address, index = struct.unpack_from("<IQI", raw, 16 * k)
        if length == 0:
            out.append("")
            continue
        if address not in heaps:
            heaps[address] = heap_collection(data, address)
        obj = heaps[address].get(index, b"")
        if obj is None or len(obj) < length:
            raise ValueError(f"{path}[{k}]: heap object {index} at {address} is damaged or shorter "
                             f"than the string's {length} bytes")
        out.append(obj[:length].decode("utf-8"))
    return out


def read_with_heap_reference(path: str) -> dict:
    """What tests/python/libhdf5_inputs.py's readers return, with every string read here."""
    import h5py
    import pandas as pd

    data = open(path, "rb").read()
    with h5py.File(path, "r") as f:
        def strings(p):
            return np.array(vlen_strings(f, p, data), dtype=object)

        x = f["X"]
        out = {"indptr": x["indptr"][:], "indices": x["indices"][:], "data": x["data"][:].astype(np.float32),
               "obs_names": strings("obs/_index"), "var_names": strings("var/_index")}
        out["shape"] = np.array([len(out["obs_names"]), len(out["var_names"])])
        for name, item in f["obs"].items():
            if name == "_index":
                continue
            if isinstance(item, h5py.Group) and "codes" in item:
                col = pd.Series(pd.Categorical.from_codes(item["codes"][:], strings(f"obs/{name}/categories")))
            elif isinstance(item, h5py.Group):
                values, mask = item["values"][:], item["mask"][:]
                arr = pd.arrays.BooleanArray(values, mask) if values.dtype == bool else pd.arrays.IntegerArray(values, mask)
                col = pd.Series(arr)
            elif item.dtype.kind == "O":
                col = pd.Series(strings(f"obs/{name}"))
            else:
                col = pd.Series(item[:])
            out[f"obs:{name}"] = np.asarray(col.astype(str) if col.dtype != float else col)
    return out
