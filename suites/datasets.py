"""Datasets that ship with packages (nothing is downloaded at run time)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from suites.errors import SuiteError


@dataclass(frozen=True)
class Dataset:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    calibration_x: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        if name == "train":
            return self.train_x, self.train_y
        if name == "calibration":
            return self.calibration_x, None
        return self.test_x, self.test_y


@cache
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()  # bundled with scikit-learn: 1797 8x8 images, 10 classes
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # NCHW, [0, 1]
    y = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    # Calibration comes from the training split so that the test split stays unseen.
    return Dataset("digits", train_x, train_y, train_x[:256], test_x, test_y)


DATASETS = {"digits": _digits}


def load_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]()
    except KeyError:
        raise SuiteError(
            f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})",
            key="accuracy.dataset",
        ) from None
