"""Connected components, vectorised (numpy, no torch): of a graph given as pairs of joined nodes (the UV
atlas's charts) and of a pixel mask (the specks a background colour key leaves in a view)."""

from __future__ import annotations

import numpy as np


def connected_components(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component labels (0..K-1) of `count` nodes joined by `pairs`: every node points to its root;
    each round hooks the larger root of every pair that disagrees under the smaller one, then compresses the
    paths (a few rounds however long the chains are)."""
    root = np.arange(count)
    a, b = pairs[:, 0], pairs[:, 1]
    while len(pairs):
        ra, rb = root[a], root[b]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(root, np.maximum(ra, rb)[differ], np.minimum(ra, rb)[differ])
        while True:  # path compression: every node to its root
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    return np.unique(root, return_inverse=True)[1]


def component_sizes(mask: np.ndarray) -> np.ndarray:
    """The pixel counts of the 4-connected components of a (H, W) bool mask's True pixels (any order)."""
    index = np.flatnonzero(mask)
    if not len(index):
        return np.zeros(0, dtype=np.int64)
    node = np.full(mask.shape, -1, dtype=np.int64)
    node.flat[index] = np.arange(len(index))
    across = mask[:, :-1] & mask[:, 1:]
    down = mask[:-1] & mask[1:]
    pairs = np.concatenate(
        [
            np.stack([node[:, :-1][across], node[:, 1:][across]], axis=1),
            np.stack([node[:-1][down], node[1:][down]], axis=1),
        ]
    )
    return np.bincount(connected_components(len(index), pairs))
