"""The seed-style baseline every row is compared with, timed in the bench's own process.

The seed's pipeline as it ran: torchvision's `MNIST` with per-sample `ToTensor`/`Normalize` through a
`DataLoader`, `SeedCNN` in the default NCHW layout, SGD(0.01, 0.5), members one after another.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def baseline(root: Path, members: int, epochs: int, batch_size: int, limit: int | None,
             threads: int | None = None) -> float:
    """Seconds to train and score `members` seed-cnns the seed's way.

    `threads` None keeps torch's default (one per core, as the seed ran it).
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from engine.models import SeedCNN

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    start = time.perf_counter()
    try:
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
        train = datasets.MNIST(str(root), train=True, download=False, transform=tf)
        test = datasets.MNIST(str(root), train=False, download=False, transform=tf)
        if limit is not None:
            train = Subset(train, range(min(limit, len(train))))
            test = Subset(test, range(min(limit // 4, len(test))))
        for member in range(members):
            torch.manual_seed(member)
            model = SeedCNN()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
            loader = DataLoader(train, batch_size=batch_size, shuffle=True)
            for _ in range(epochs):
                model.train()
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, _ in DataLoader(test, batch_size=1000):
                    model(x)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(default_threads)
