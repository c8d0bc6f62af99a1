"""Datasets as NumPy arrays, found the way the ``bio`` command finds them."""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np

from ._biorule import load_dataset as _load_dataset

__all__ = ["load"]


def load(
    name: Union[str, os.PathLike] = "fashion-mnist",
    data_dir: Optional[Union[str, os.PathLike]] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loads ``(x_train, y_train, x_test, y_test)``.

    ``name`` is ``"fashion-mnist"``, ``"mnist"``, ``"kmnist"`` (searched for in ``data_dir``, then
    ``$BIO_DATA_DIR``, ``~/.cache/biorule/NAME``, ``/usr/share/datasets/NAME``), ``"embedded"`` (the
    Fashion-MNIST subset built into biorule: 600 train and 100 test images per class), or a directory
    holding the four IDX files. Images are float32 ``(n, 28, 28)`` in ``[0, 1]``; labels are int64.

    Raises ``FileNotFoundError`` (listing every place searched) when a named dataset is absent,
    ``OSError`` for unreadable or malformed files, ``ValueError`` for an unknown name.
    """
    return _load_dataset(os.fspath(name), None if data_dir is None else os.fspath(data_dir))
