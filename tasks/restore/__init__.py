"""Restore: repair damaged photos with a cluster-conditioned U-Net (the task: `task.py`; the synthetic damage it trains
on: `damage.py`; the clusterer: `cluster.py`; the network: `model.py`)."""

from tasks.restore.task import (CONDITIONINGS, DEFAULT_DATA, DEFAULT_TEST, Config, Restored, cluster_of, damaged_copy,
                                damaged_pair, evaluate, image_scores, load, predict, restore_image, score_photos, train)

__all__ = ["CONDITIONINGS", "DEFAULT_DATA", "DEFAULT_TEST", "Config", "Restored", "cluster_of", "damaged_copy",
           "damaged_pair", "evaluate", "image_scores", "load", "predict", "restore_image", "score_photos", "train"]
