"""Restore's clusterer: PCA + HDBSCAN (for k) + KMeans, saved as arrays and rebuilt without pickle, same labels."""

import numpy as np
import pytest

from tasks.restore.cluster import ARRAYS, NUMBERS, Clusterer, plot_clusters


@pytest.fixture(scope="module")
def blobs():
    """Three well-separated groups of 60 points in 32 dimensions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 32))
    return np.concatenate([centre + rng.normal(0, 0.5, (60, 32)) for centre in centres])


def test_hdbscan_finds_the_groups_and_kmeans_labels_them(blobs):
    clusterer = Clusterer.fit(blobs, min_cluster_size=40)
    labels = clusterer.predict(blobs)
    assert clusterer.k == 3 and sorted(clusterer.report.sizes) == [60, 60, 60]
    assert all(len(set(labels[i:i + 60])) == 1 for i in (0, 60, 120))  # each group one cluster


def test_save_and_load_round_trip_without_pickle_gives_the_same_labels(blobs, tmp_path):
    clusterer = Clusterer.fit(blobs)
    clusterer.save(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([ARRAYS, NUMBERS])
    assert b"\x80\x04" not in (tmp_path / ARRAYS).read_bytes()[:16]  # safetensors, not a pickle
    again = Clusterer.load(tmp_path)
    unseen = blobs + np.random.default_rng(1).normal(0, 0.3, blobs.shape)
    np.testing.assert_array_equal(again.predict(unseen), clusterer.predict(unseen))
    np.testing.assert_allclose(again.transform(unseen), clusterer.transform(unseen))
    assert again.report == clusterer.report


def test_noise_only_features_give_one_cluster_and_too_few_rows_are_refused(tmp_path):
    noise = np.random.default_rng(2).normal(size=(30, 16))
    assert Clusterer.fit(noise, min_cluster_size=40).k == 1
    with pytest.raises(ValueError, match="N > 10"):
        Clusterer.fit(noise[:5])
    with pytest.raises(FileNotFoundError, match="no fitted clusterer"):
        Clusterer.load(tmp_path)


def test_the_report_figure_is_written(blobs, tmp_path):
    plot_clusters(Clusterer.fit(blobs), blobs, tmp_path / "clusters.png")
    assert (tmp_path / "clusters.png").stat().st_size > 10_000
