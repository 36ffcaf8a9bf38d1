"""Small molecule-like graphs with four computable yes/no properties, generated from a seed.

Each graph has 6-12 nodes of 4 types (probabilities 0.4, 0.3, 0.2, 0.1). Its backbone is a
random tree (each node links to an earlier node with fewer than 4 links); 0-2 extra edges
close rings. Graphs are stored densely, padded to 12 nodes: one-hot node types, a node mask
and a symmetric adjacency matrix. The four labels are
  0. some type-0 node has at least two type-1 neighbours;
  1. some type-2 node has at least three neighbours;
  2. at least two edges join a type-0 and a type-3 node;
  3. the graph has a ring (more edges than a tree).
12,000 distinct graphs: 8,000 train, 2,000 validation, 2,000 test.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

MAX_NODES = 12
NUM_TYPES = 4
NUM_TASKS = 4
TYPE_PROBABILITIES = (0.4, 0.3, 0.2, 0.1)
SEED = 0
NUM_TRAIN, NUM_VALIDATION, NUM_TEST = 8000, 2000, 2000


def make_graph(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One padded graph and its four labels."""
    n = int(rng.integers(6, MAX_NODES + 1))
    types = rng.choice(NUM_TYPES, size=n, p=TYPE_PROBABILITIES)
    adjacency = np.zeros((MAX_NODES, MAX_NODES), np.float32)
    for node in range(1, n):
        candidates = [j for j in range(node) if adjacency[j].sum() < 4]
        j = int(rng.choice(candidates))
        adjacency[node, j] = adjacency[j, node] = 1.0
    for _ in range(int(rng.integers(0, 3))):
        a, b = rng.choice(n, size=2, replace=False)
        adjacency[a, b] = adjacency[b, a] = 1.0
    a = adjacency[:n, :n]
    degree = a.sum(axis=1)
    type_neighbours = a @ np.eye(NUM_TYPES)[types]  # (n, types)
    labels = np.array(
        [
            np.any((types == 0) & (type_neighbours[:, 1] >= 2)),
            np.any((types == 2) & (degree >= 3)),
            np.sum(a[np.ix_(types == 0, types == 3)]) >= 2,
            a.sum() / 2 > n - 1,
        ],
        np.float32,
    )
    nodes = np.zeros((MAX_NODES, NUM_TYPES), np.float32)
    nodes[np.arange(n), types] = 1.0
    mask = np.zeros(MAX_NODES, np.float32)
    mask[:n] = 1.0
    return {"nodes": nodes, "mask": mask, "adjacency": adjacency, "labels": labels}


class OptarenaGraphs(tfds.core.GeneratorBasedBuilder):
    """Padded dense graphs with four binary labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        tensor = tfds.features.Tensor
        return tfds.core.DatasetInfo(
            builder=self,
            description="Molecule-like random graphs with four structural labels.",
            features=tfds.features.FeaturesDict(
                {
                    "nodes": tensor(shape=(MAX_NODES, NUM_TYPES), dtype=np.float32),
                    "mask": tensor(shape=(MAX_NODES,), dtype=np.float32),
                    "adjacency": tensor(shape=(MAX_NODES, MAX_NODES), dtype=np.float32),
                    "labels": tensor(shape=(NUM_TASKS,), dtype=np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        rng = np.random.default_rng(SEED)
        graphs, seen = [], set()
        while len(graphs) < NUM_TRAIN + NUM_VALIDATION + NUM_TEST:
            graph = make_graph(rng)
            key = graph["nodes"].tobytes() + graph["adjacency"].tobytes()
            if key not in seen:  # no graph may appear twice, let alone in two splits
                seen.add(key)
                graphs.append(graph)
        bounds = {
            "train": range(NUM_TRAIN),
            "validation": range(NUM_TRAIN, NUM_TRAIN + NUM_VALIDATION),
            "test": range(NUM_TRAIN + NUM_VALIDATION, len(graphs)),
        }
        return {name: self._generate_examples(graphs, index) for name, index in bounds.items()}

    def _generate_examples(self, graphs, indices):
        for i in indices:
            yield int(i), graphs[i]
