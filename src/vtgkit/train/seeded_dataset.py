"""Makes a dataset's own randomness (e.g. the R²-Tuning positive clip draw) a function of (seed, epoch, index).

The official loaders draw in worker processes from per-worker RNG streams, so which sample gets which draw depends
on the number of workers and on where a run was resumed. Seeding each item from (seed, epoch, index) gives the
same draws for any worker count and across a resume. The distribution of the draws is unchanged; the official
random stream cannot be matched anyway (different process layout).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class IndexSeededDataset(Dataset):
    """Wraps ``dataset``; ``__getitem__`` runs with python/numpy/torch RNGs seeded from (seed, epoch, index).

    The global RNG states of the calling process are restored afterwards, so the model's dropout stream is not
    disturbed when loading runs in the main process.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Any:
        item_seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        python_state = random.getstate()
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                random.seed(item_seed)
                np.random.seed(item_seed)
                torch.manual_seed(item_seed)
                return self.dataset[index]
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    def __getattr__(self, name: str) -> Any:
        # Dataset attributes (samples, collate helpers) stay reachable through the wrapper.
        if name in {"dataset", "seed", "epoch"}:
            raise AttributeError(name)
        return getattr(self.dataset, name)
