"""Colorize: predict a photo's a*b* color channels from its lightness L (CIELAB).

Two colorizers are served (`MODELS`): "photos", the general-photo model (`PhotoColorizer`, the suite's U-Net with a
global-context branch, trained on varied photos and faces), and "faces", the original course project's experiment.
That project had two models: a tiny regressor for an image's mean a*b* (`MeanColor`), and the colorizer
(`Colorizer`), a fully convolutional net with one BatchNorm at the input, 3 stride-2 convolutions down, 3
convolutions, 3 upsampling convolutions back up, MAE loss; `skip=True` adds U-Net skip connections.

    RGB ─▶ L*a*b* ─▶ L (B,1,128,128) ─BN─down ×3─▶ (B,w,16,16) ─conv ×3─up ×3─▶ a*b* (B,2,128,128) in [0, 1]

`ColorizerEnsemble` averages the a*b* of several colorizers trained alike with different seeds (`--init_seed`).
`predict` runs the model at its training resolution and joins the upsampled a*b* with the ORIGINAL full-resolution L,
so no detail is lost. All MAE figures are on a*b* normalised as in `lab`, comparable with the original's.

    lab.py       the normalised CIELAB conversion, both ways
    data.py      photos by person, the split by person, extra photos (grayscale ones skipped), augmentation
    models.py    MeanColor, Colorizer, ColorizerEnsemble, PhotoColorizer
    scoring.py   MAE per photo and per person, the tint oracle, the mean-color regressor's MSE, colourfulness
    fit.py       Config, train, the output folder and model card
    serve.py     load, predict, evaluate
    ensemble.py  build_ensemble and `python -m tasks.colorize ensemble`

The task contract (Config, train, load, predict, evaluate) and the names the app, bench, training scripts and tests
use are re-exported here.
"""

from tasks.colorize.data import (DEFAULT_DATA, DEFAULT_TRANSFER, augment, folder_photos, load_extra_photos, load_photos,
                                 load_split_photos, photo_groups, square)
from tasks.colorize.ensemble import build_ensemble, main
from tasks.colorize.fit import Config, train
from tasks.colorize.lab import (A_RANGE, B_RANGE, NEUTRAL_AB, ab_units, gray_from_lightness, has_color, lab_to_rgb,
                                normalise_ab, rgb_to_lab)
from tasks.colorize.models import Colorizer, ColorizerEnsemble, MeanColor, Model, PhotoColorizer, count_parameters
from tasks.colorize.scoring import by_group, colorfulness, mae, match_cast, score, score_mean_color
from tasks.colorize.serve import DEFAULT_MODEL, MODELS, Colorized, NoSuchModel, evaluate, load, predict

__all__ = ["A_RANGE", "B_RANGE", "Colorized", "Colorizer", "ColorizerEnsemble", "Config", "DEFAULT_DATA",
           "DEFAULT_MODEL", "DEFAULT_TRANSFER", "MODELS", "MeanColor", "Model", "NEUTRAL_AB", "NoSuchModel", "PhotoColorizer",
           "ab_units", "augment", "build_ensemble", "by_group", "colorfulness", "count_parameters", "evaluate",
           "folder_photos", "gray_from_lightness", "has_color", "lab_to_rgb", "load", "load_extra_photos",
           "load_photos", "load_split_photos", "mae", "main", "match_cast", "normalise_ab", "photo_groups",
           "predict", "rgb_to_lab", "score", "score_mean_color", "square", "train"]
