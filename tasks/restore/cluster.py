"""The image clusterer Restore conditions on, as in the original project: encoder feature vectors → PCA(10) →
HDBSCAN(min_samples=2, min_cluster_size=40) to choose the number of clusters k → KMeans(k), all scikit-learn.

Saved as plain arrays (clusterer.safetensors: the PCA's mean and components, the KMeans centres) and numbers
(clusterer.json), never a pickle; `load` rebuilds fitted scikit-learn `PCA` and `KMeans` objects from them, so
`predict` is scikit-learn's own transform and nearest-centre rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ARRAYS = "clusterer.safetensors"
NUMBERS = "clusterer.json"


@dataclass
class ClusterReport:
    """What fitting found: HDBSCAN's cluster count (k) and noise share, and each KMeans cluster's size."""

    k: int
    hdbscan_clusters: int
    hdbscan_noise_fraction: float
    sizes: list[int] = field(default_factory=list)
    n_components: int = 10
    min_samples: int = 2
    min_cluster_size: int = 40
    explained_variance_ratio: list[float] = field(default_factory=list)


class Clusterer:
    """A fitted PCA + KMeans pair (k chosen by HDBSCAN). Build with `fit` or `load`."""

    def __init__(self, pca, kmeans, report: ClusterReport):
        self.pca, self.kmeans, self.report = pca, kmeans, report

    @property
    def k(self) -> int:
        return self.report.k

    @classmethod
    def fit(cls, features: np.ndarray, n_components: int = 10, min_samples: int = 2, min_cluster_size: int = 40,
            seed: int = 0) -> Clusterer:
        """Fit on (N, D) float features: PCA to `n_components`, HDBSCAN on those for k (at least 1: all noise or a
        single cluster means one class), then KMeans(k, seeded).

        Raises:
            ValueError: fewer rows than n_components + 1, or features that are not 2-D.
        """
        from sklearn.cluster import HDBSCAN, KMeans
        from sklearn.decomposition import PCA

        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) <= n_components:
            raise ValueError(f"Need (N, D) features with N > {n_components}; got {features.shape}.")
        pca = PCA(n_components=n_components, random_state=seed).fit(features)
        reduced = pca.transform(features)
        labels = HDBSCAN(min_samples=min_samples, min_cluster_size=min(min_cluster_size, len(features)), copy=True).fit(
            reduced).labels_
        found = int(labels.max()) + 1 if (labels >= 0).any() else 0
        k = max(1, found)
        kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(reduced)
        sizes = np.bincount(kmeans.labels_, minlength=k).tolist()
        report = ClusterReport(k=k, hdbscan_clusters=found, hdbscan_noise_fraction=float((labels < 0).mean()),
                               sizes=sizes, n_components=n_components, min_samples=min_samples,
                               min_cluster_size=min_cluster_size,
                               explained_variance_ratio=pca.explained_variance_ratio_.tolist())
        return cls(pca, kmeans, report)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features → (N, n_components) PCA coordinates."""
        return self.pca.transform(np.asarray(features, dtype=np.float64))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features → (N,) int64 cluster ids in [0, k)."""
        return self.kmeans.predict(self.transform(features)).astype(np.int64)

    def save(self, folder: str | Path) -> None:
        """folder/clusterer.safetensors (float64 arrays) + folder/clusterer.json (the report)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"pca_mean": self.pca.mean_, "pca_components": self.pca.components_,
                  "pca_explained_variance": self.pca.explained_variance_, "kmeans_centers": self.kmeans.cluster_centers_}
        # C order: safetensors writes an array's buffer as is, and PCA's components_ may be Fortran-ordered
        save_file({name: np.ascontiguousarray(array) for name, array in arrays.items()}, str(folder / ARRAYS))
        (folder / NUMBERS).write_text(json.dumps(asdict(self.report), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> Clusterer:
        """Rebuild from `save`'s files: scikit-learn PCA and KMeans with their fitted attributes set from the arrays.

        Raises:
            FileNotFoundError: the folder lacks either file.
        """
        from safetensors.numpy import load_file
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        folder = Path(folder)
        if not (folder / ARRAYS).is_file() or not (folder / NUMBERS).is_file():
            raise FileNotFoundError(f"{folder} has no fitted clusterer ({ARRAYS} + {NUMBERS}).")
        arrays = load_file(str(folder / ARRAYS))
        report = ClusterReport(**json.loads((folder / NUMBERS).read_text()))
        pca = PCA(n_components=report.n_components)
        pca.mean_, pca.components_ = arrays["pca_mean"], arrays["pca_components"]
        pca.explained_variance_ = arrays["pca_explained_variance"]
        pca.n_components_, pca.n_features_in_ = len(pca.components_), pca.components_.shape[1]
        kmeans = KMeans(n_clusters=report.k, n_init=1)
        kmeans.cluster_centers_ = arrays["kmeans_centers"]
        kmeans.n_features_in_ = kmeans.cluster_centers_.shape[1]
        kmeans._n_threads = 1  # what fit sets; predict reads it
        return cls(pca, kmeans, report)


def plot_clusters(clusterer: Clusterer, features: np.ndarray, path: str | Path) -> None:
    """The report figure: cluster sizes (a bar per cluster) and the first three PCA coordinates coloured by cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reduced = clusterer.transform(features)
    labels = clusterer.predict(features)
    fig = plt.figure(figsize=(10, 4))
    ax_sizes = fig.add_subplot(1, 2, 1)
    ax_sizes.bar(range(clusterer.k), np.bincount(labels, minlength=clusterer.k), color="C0")
    ax_sizes.set_xlabel("cluster")
    ax_sizes.set_ylabel("views of training photos")
    ax_sizes.set_title(f"k = {clusterer.k} (HDBSCAN found {clusterer.report.hdbscan_clusters}, "
                       f"{clusterer.report.hdbscan_noise_fraction:.0%} noise)", fontsize=9)
    ax_scatter = fig.add_subplot(1, 2, 2, projection="3d")
    ax_scatter.scatter(*reduced[:, :3].T, c=labels, cmap="tab20", s=6)
    ax_scatter.set_title("PCA 1–3 of the encoder features, by cluster", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
