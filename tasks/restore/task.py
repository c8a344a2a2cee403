"""Restore: repair a damaged photo with a U-Net conditioned on the photo's cluster (the original project's design).

    clean photo ─damage(recipe, seed)─▶ damaged ─RestoreUNet(class = clusterer(features(damaged)))─▶ restored

Training runs in two phases in one resumable loop: until `cluster_epoch` every patch is class 0; then the clusterer
(`cluster.Clusterer`: PCA → HDBSCAN for k → KMeans) is fitted on the training photos' bottleneck features, the
encoder is frozen (so the features stay the ones it was fitted on) and each patch takes its photo's cluster while
the decoder and the class embedding go on learning. `conditioning="none"` never clusters (the BASELINE row). The damage is new for every
batch (seeded by the batch's draw, so a resumed run sees the same damage).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from PIL import Image
from tqdm.auto import tqdm

from tasks import hub, training
from tasks.images import load_layers, load_rgb, photo_sources
from tasks.restore import damage as damages
from tasks.restore.cluster import Clusterer, plot_clusters
from tasks.restore.model import RestoreUNet
from tasks.tiling import tiled
from tasks.training import count_parameters

logger = logging.getLogger(__name__)

TASK = "restore"
PHOTOS = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "data" / "photos"
DEFAULT_DATA = str(PHOTOS / "bsds-train")
DEFAULT_TEST = str(PHOTOS / "bsds-test")  # what evaluate and the bench score: never seen in training or selection
CONDITIONINGS = ("cluster", "none")
FEATURE_SIDE = 256  # the longer side of the copy of a photo its features (and so its cluster) are computed on
CLUSTERER = "clusterer"  # the sub-folder holding the fitted clusterer


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # clean training photos: folders or datasets ids (owner/name[:split]), comma-separated
    val_data: str = ""  # clean photos that select the epoch; "" = the last val_images photos of data, held out
    output_dir: str = "outputs/restore"
    conditioning: str = "cluster"  # "cluster": classes from the clusterer after cluster_epoch; "none": class 0 always
    width: int = 16  # the U-Net's first level's channels (doubling each level)
    depth: int = 4  # the U-Net's levels below the first (inputs padded to multiples of 2^depth)
    max_classes: int = 32  # rows of the class embedding (k ≤ this)
    cluster_epoch: int = 5  # fit the clusterer when this many epochs are done
    n_components: int = 10  # clusterer: PCA dimensions
    min_samples: int = 2  # clusterer: HDBSCAN's min_samples
    min_cluster_size: int = 40  # clusterer: HDBSCAN's min_cluster_size (at most the number of views)
    cluster_views: int = 4  # clusterer: views of each training photo it is fitted on (crops, damage seeds)
    patch_size: int = 96  # side of a training patch (a multiple of 2^depth)
    lpips_weight: float = 0.0  # loss = L1 + this × LPIPS (alex, v0.1) of the restored patches (0: L1 alone)
    patches_per_image: int = 8  # random patches of each photo per epoch (flips and quarter turns)
    random_strength: bool = False  # each patch gets the recipe with every kind's strength × its own U(0, 1) draw
    clean_share: float = 0.0  # with random_strength: this share of the patches is left undamaged (learn to leave be)
    damage_seed: int = 0  # validation damage: photo i gets seed damage_seed + i
    val_images: int = 20  # validation photos scored per epoch (held out of data, or the first N of val_data)
    num_epochs: int = 30
    train_batch_size: int = 16
    learning_rate: float = 2e-3
    lr_warmup_steps: int = 100
    max_grad_norm: float = 0.0  # no clipping (L1 loss)
    checkpointing_steps: int = 200


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL → (1, 3, H, W) float32 in [0, 1]."""
    return torch.tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1)[None] / 255.0


def to_image(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) float in [0, 1] (clamped) or uint8 → RGB PIL."""
    if tensor.dtype != torch.uint8:
        tensor = tensor.clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(tensor[0].permute(1, 2, 0).numpy())


def clean_patches(photos: list[np.ndarray], indices: torch.Tensor, size: int,
                  generator: torch.Generator) -> torch.Tensor:
    """(B, 3, size, size) float in [0, 1]: a random crop of photo index % len(photos), randomly flipped and turned
    (a photo smaller than a patch is stretched to it first)."""
    patches = []
    for index in indices.tolist():
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        side = min(size, height, width)
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        patch = torch.tensor(photo[top:top + side, left:left + side], dtype=torch.float32).permute(2, 0, 1) / 255.0
        if side != size:
            patch = F.interpolate(patch[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        if bool(torch.rand(1, generator=generator) < 0.5):
            patch = patch.flip(-1)
        patches.append(torch.rot90(patch, int(torch.randint(0, 4, (1,), generator=generator)), dims=(1, 2)))
    return torch.stack(patches)


def damage_patches(clean: torch.Tensor, units: torch.Tensor, recipe: dict[str, float],
                   generator: torch.Generator, random_strength: bool = False, clean_share: float = 0.0) -> torch.Tensor:
    """(B, 3, h, w) clean crops → damaged, each at its own photo's size unit `units` (B,) (crops of one unit damaged
    together), so a crop gets the damage its whole photo would: marks of the photo's size, as many per pixel.

    With `random_strength`, each crop is damaged alone, by the recipe with every kind's strength scaled by its own
    uniform draw in [0, 1] (so a crop may be faded but barely scratched, or the reverse), and a `clean_share` of the
    crops is left as it was: a net that only ever saw the full recipe "repairs" a photo that needs none."""
    damaged = torch.empty_like(clean)
    if random_strength:
        for index in range(clean.shape[0]):
            draws = torch.rand(len(recipe) + 1, generator=generator).tolist()
            if draws[0] < clean_share:
                damaged[index] = clean[index]
                continue
            scaled = {kind: strength * draw for (kind, strength), draw in zip(recipe.items(), draws[1:])}
            damaged[index] = damages.damage(clean[index:index + 1], scaled, generator,
                                            unit=float(units[index])).image[0]
        return damaged
    for unit in torch.unique(units).tolist():
        chosen = (units == unit).nonzero().flatten()
        damaged[chosen] = damages.damage(clean[chosen], recipe, generator, unit=unit).image
    return damaged


def damaged_copy(photo: Image.Image, seed: int, recipe: dict[str, float] | None = None) -> Image.Image:
    """The photo damaged by `recipe` (default `damage.DEFAULT_RECIPE`) with damage seed `seed`, as 8-bit RGB."""
    return damaged_pair(photo, seed, recipe)[0]


def damaged_pair(photo: Image.Image, seed: int,
                 recipe: dict[str, float] | None = None) -> tuple[Image.Image, np.ndarray]:
    """`damaged_copy` and its mask of replaced pixels, (H, W) bool (what a classical inpainter is given)."""
    damaged = damages.damage(to_tensor(photo), recipe, torch.Generator().manual_seed(seed))
    return to_image(damaged.image), damaged.mask[0, 0].numpy()


# ---------------------------------------------------------------------------------------------------------------------
# Classes: features → cluster
# ---------------------------------------------------------------------------------------------------------------------


def padded(model: RestoreUNet, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) padded at the right and bottom (edge repeated) to multiples of the model's."""
    pad_h, pad_w = -image.shape[-2] % model.multiple, -image.shape[-1] % model.multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


@torch.inference_mode()
def photo_features(model: RestoreUNet, photo: Image.Image) -> np.ndarray:
    """(C,) float64: the model's features of the (damaged) photo, computed once on a copy whose longer side is
    FEATURE_SIDE, whatever the photo's size (so a class never depends on a tile)."""
    scale = FEATURE_SIDE / max(photo.size)
    small = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                         Image.Resampling.BICUBIC)
    with training.evaluating(model):
        return model.features(padded(model, to_tensor(small)))[0].double().numpy()


def n_classes(served: hub.Served) -> int:
    """The classes the served net takes: its clusterer's k, or 1 (class 0) without a clusterer."""
    clusterer = served.facts.get("clusterer")
    return clusterer.k if clusterer is not None else 1


def cluster_of(served: hub.Served, damaged: Image.Image) -> int:
    """The class the served model takes for this damaged photo: its cluster, or 0 without a clusterer."""
    clusterer = served.facts.get("clusterer")
    if clusterer is None:
        return 0
    return int(clusterer.predict(photo_features(served.model, damaged)[None])[0])


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def train(cfg: Config, accelerator: Accelerator | None = None) -> hub.Served[RestoreUNet]:
    """Train the restorer on freshly damaged patches (L1 on the restored patch, + lpips_weight × LPIPS), cluster the training photos at
    `cluster_epoch` (conditioning "cluster"), keep the epoch with the best validation PSNR, write `cfg.output_dir`.

    Returns:
        `load(cfg.output_dir)`.

    Raises:
        ValueError: an unknown conditioning, a patch size that is not a multiple of 2^depth, a negative lpips_weight, a clean_share
            outside [0, 1).
        tasks.perceptual.LPIPSUnavailable: lpips_weight > 0 without LPIPS's weights on this machine.
    """
    if cfg.conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}; got {cfg.conditioning!r}.")
    if cfg.patch_size % 2 ** cfg.depth:
        raise ValueError(f"patch_size must be a multiple of 2^depth = {2 ** cfg.depth}; got {cfg.patch_size}.")
    if cfg.lpips_weight < 0:
        raise ValueError(f"lpips_weight must be 0 or more; got {cfg.lpips_weight}.")
    if not 0 <= cfg.clean_share < 1:
        raise ValueError(f"clean_share must be in [0, 1); got {cfg.clean_share}.")
    perceptual = None
    if cfg.lpips_weight > 0:  # LPIPSUnavailable (with how to get the weights) before any training
        from tasks.perceptual import lpips_model

        perceptual = copy.deepcopy(lpips_model()).requires_grad_(False)  # its own copy: the metric stays on the CPU
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)
    photos_pil = [load_rgb(source) for source in photo_sources(cfg.data)]
    if cfg.val_data:
        val_photos = [load_rgb(source) for source in photo_sources(cfg.val_data, split="test")[:cfg.val_images]]
    else:  # held out of the training photos: the test photos never choose anything
        if len(photos_pil) <= cfg.val_images:
            raise ValueError(f"{cfg.data} has {len(photos_pil)} photos: too few to hold out val_images = "
                             f"{cfg.val_images} for validation (pass --val_data, or fewer --val_images).")
        photos_pil, val_photos = photos_pil[:-cfg.val_images], photos_pil[-cfg.val_images:]
    photos = [np.asarray(photo) for photo in photos_pil]
    units = torch.tensor([max(min(photo.shape[:2]), cfg.patch_size) / 256.0 for photo in photos])  # each photo's
    recipe = damages.DEFAULT_RECIPE  # size unit: its crops get its damage (marks of its size, as many per pixel)

    model = RestoreUNet(width=cfg.width, depth=cfg.depth, max_classes=cfg.max_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    n_items = len(photos) * cfg.patches_per_image
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, training.steps_per_epoch(n_items, cfg))
    shape = {"conditioning": cfg.conditioning, "recipe": damages.DEFAULT_RECIPE_NAME,
             "random_strength": cfg.random_strength, "clean_share": cfg.clean_share,
             **training.loop_shape(cfg, accelerator)}
    run = training.Run(cfg, accelerator, model, optimizer, scheduler, shape)
    state, best_path = run.state, run.best_path
    clusterer_dir = output_dir / training.CHECKPOINTS / CLUSTERER
    clusterer = Clusterer.load(clusterer_dir) if "photo_classes" in state.extra else None
    if clusterer is not None:
        model.freeze_encoder()
    model, optimizer = accelerator.prepare(model, optimizer)
    logger.info("***** restore: training (%s) *****\n  %d photos × %d patches, %d parameters\n  epochs = %d, "
                "steps = %d, batch = %d, lr = %g, device = %s", cfg.conditioning, len(photos), cfg.patches_per_image,
                count_parameters(model), cfg.num_epochs, total_steps, cfg.train_batch_size, cfg.learning_rate,
                accelerator.device)
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc=f"restore {cfg.conditioning}")
    losses: list[float] = []
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        if cfg.conditioning == "cluster" and clusterer is None and state.epoch >= cfg.cluster_epoch:
            # every process fits the same clusterer (the same weights and photos, seeded); the main one saves it
            clusterer, state.extra["photo_classes"] = fit_clusterer(accelerator.unwrap_model(model), photos_pil, cfg)
            accelerator.unwrap_model(model).freeze_encoder()  # the features the clusterer was fitted on stay put
            if accelerator.num_processes > 1:  # DDP reduces the gradients of the parameters it was built with
                model = accelerator.prepare(accelerator.unwrap_model(model))
            # the served net must be one that uses the classes: the epochs before them no longer compete
            state.best_metric, state.best_epoch, state.bad_epochs = None, -1, 0
            if accelerator.is_main_process:
                clusterer.save(clusterer_dir)
                best_path.unlink(missing_ok=True)
            logger.info("epoch %d: %d clusters (HDBSCAN found %d), sizes %s", state.epoch, clusterer.k,
                        clusterer.report.hdbscan_clusters, clusterer.report.sizes)
        classes = torch.tensor(state.extra.get("photo_classes", [0] * len(photos)), dtype=torch.long)
        model.train()
        for batch in training.epoch_batches(n_items, cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            generator = torch.Generator().manual_seed(batch.draw)
            clean = clean_patches(photos, batch.indices, cfg.patch_size, generator)
            damaged = damage_patches(clean, units[batch.indices % len(photos)], recipe, generator,
                                     cfg.random_strength, cfg.clean_share)
            batch_classes = classes[batch.indices % len(photos)]
            clean, damaged, batch_classes = (t.to(accelerator.device) for t in (clean, damaged, batch_classes))
            with training.accumulating(accelerator, model, batch):
                restored = model(damaged, batch_classes).float()
                loss = F.l1_loss(restored, clean)
                if perceptual is not None:
                    perceptual.to(accelerator.device)
                    loss = loss + cfg.lpips_weight * perceptual(restored, clean, normalize=True).mean()
                training.backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
            training.record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                run.save()
        else:
            training.sync_buffers(accelerator, model)  # every process validates the same weights
            served = hub.Served(model=accelerator.unwrap_model(model), weights=None, metrics={},
                                facts={"clusterer": clusterer})
            score = score_photos(served, val_photos, cfg.damage_seed, recipe, lpips=False)
            logger.info("epoch %d: validation PSNR %.3f dB (damaged %.3f)", state.epoch, score["psnr"],
                        score["damaged_psnr"])
            state.history.setdefault("val_seconds", []).append(run.elapsed())
            run.end_epoch(value=score["psnr"], val_loss=-score["psnr"], improved=state.is_better(score["psnr"], maximize=True),
                          model=accelerator.unwrap_model(model))
            run.save()
    progress.close()
    model = run.finish(model)
    if accelerator.is_main_process:
        write_output(model, clusterer, photos_pil, cfg, state)
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def training_features(model: RestoreUNet, photos: list[Image.Image], cfg: Config) -> np.ndarray:
    """(N, views, C) features of each training photo seen `cluster_views` times: each view a seeded random crop of
    60–100% of each side, damaged by the default recipe, as a served photo would be seen. Views give HDBSCAN
    enough points (200 photos alone are all noise at min_cluster_size 40)."""
    views = []
    for index, photo in enumerate(photos):
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        for view in range(cfg.cluster_views):
            width, height = (max(1, int(side * (0.6 + 0.4 * float(torch.rand(1, generator=generator)))))
                             for side in photo.size)
            left = int(torch.randint(0, photo.width - width + 1, (1,), generator=generator))
            top = int(torch.randint(0, photo.height - height + 1, (1,), generator=generator))
            crop = photo.crop((left, top, left + width, top + height))
            damaged = damaged_copy(crop, (cfg.seed + index) * cfg.cluster_views + view)
            views.append(photo_features(model, damaged))
    return np.stack(views).reshape(len(photos), cfg.cluster_views, -1)


def fit_clusterer(model: RestoreUNet, photos: list[Image.Image], cfg: Config) -> tuple[Clusterer, list[int]]:
    """The clusterer fitted on every view of every training photo, and each photo's class: the cluster most of its
    views fall in.

    Raises:
        ValueError: more clusters than max_classes.
    """
    features = training_features(model, photos, cfg)
    points = features.reshape(-1, features.shape[-1])
    clusterer = Clusterer.fit(points, n_components=min(cfg.n_components, len(points) - 1),
                              min_samples=cfg.min_samples, min_cluster_size=cfg.min_cluster_size, seed=cfg.seed)
    if clusterer.k > cfg.max_classes:
        raise ValueError(f"The clusterer found {clusterer.k} clusters, more than max_classes = {cfg.max_classes}.")
    labels = clusterer.predict(points).reshape(len(photos), cfg.cluster_views)
    return clusterer, [int(np.bincount(row, minlength=clusterer.k).argmax()) for row in labels]


def write_output(model: RestoreUNet, clusterer: Clusterer | None, photos: list[Image.Image], cfg: Config,
                 state: training.LoopState) -> None:
    """The served folder: weights + config.json, restore_config.json, the clusterer (clusterer/) and its figure,
    metrics.json, training_curves.png and a model card."""
    output_dir = Path(cfg.output_dir)
    training.save_atomically(model.save_pretrained, output_dir)
    (output_dir / "restore_config.json").write_text(json.dumps(
        {"conditioning": cfg.conditioning, "recipe": damages.DEFAULT_RECIPE_NAME}, indent=2))
    if clusterer is None:  # a reused output folder never keeps an earlier run's clusterer (load would take it)
        import shutil

        shutil.rmtree(output_dir / CLUSTERER, ignore_errors=True)
        (output_dir / "clusters.png").unlink(missing_ok=True)
    else:
        clusterer.save(output_dir / CLUSTERER)
        features = training_features(model, photos, cfg)
        plot_clusters(clusterer, features.reshape(-1, features.shape[-1]), output_dir / "clusters.png")
    training.plot_training_curves(state.history, output_dir / "training_curves.png", "restore: L1",
                                  "validation: -PSNR (dB, per epoch)")
    summary = {"conditioning": cfg.conditioning, "parameters": count_parameters(model),
               "best_val_psnr": state.best_metric, "best_epoch": state.best_epoch, "epochs_trained": state.epoch,
               "steps": state.global_step, "training_seconds": round(state.seconds, 3),
               "clusters": clusterer.report.sizes if clusterer is not None else None,  # views per cluster
               "hdbscan_clusters": clusterer.report.hdbscan_clusters if clusterer is not None else None,
               "photos_per_cluster": (np.bincount(state.extra["photo_classes"], minlength=clusterer.k).tolist()
                                      if clusterer is not None else None),
               "recipe": {"name": damages.DEFAULT_RECIPE_NAME, **damages.DEFAULT_RECIPE},
               "val_psnr": [-value for value in state.history["val_loss"]],
               "val_seconds": [round(value, 3) for value in state.history.get("val_seconds", [])],
               "resumed": state.resumed, "config": asdict(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_card(output_dir)


ROWS = {"damaged": "DAMAGED (the input)", "baseline": "BASELINE (class 0 always)", "real": "REAL (the clusterer's class)",
        "max_class": "MAX_CLASS (each class tried, best PSNR kept: an oracle)",
        "opencv_telea_nlm": "OpenCV: Telea inpainting (true mask) + fast NLM",
        "opencv_telea_nlm_levels": "OpenCV: Telea + fast NLM, then auto levels (0.5-99.5% per channel)",
        "skimage_biharmonic_nlm": "scikit-image: biharmonic inpainting (true mask) + NLM"}


def write_card(folder: str | Path, bench: dict | None = None) -> None:
    """folder/README.md from its metrics.json: the net, the damage recipe, the clusters, the training; with `bench`
    (the result of `python -m bench restore`) the original project's table on the same damaged photos."""
    folder = Path(folder)
    summary = hub.read_json(folder, "metrics.json")
    cfg = summary["config"]
    recipe = summary["recipe"]
    recipe_row = ", ".join(f"{kind} {value:g}" for kind, value in recipe.items() if kind != "name")
    found = summary.get("hdbscan_clusters")
    if found is None and (folder / CLUSTERER).is_dir():  # folders written before metrics.json recorded it
        found = Clusterer.load(folder / CLUSTERER).report.hdbscan_clusters
    n_clusters = len(summary["clusters"] or [])
    one_class = (f" HDBSCAN found {'no dense group' if found == 0 else f'{found} group'} among the views, so k = 1: "
                 "every photo gets the same class, and the clusterer conditions nothing."
                 if n_clusters == 1 else "")
    clusters = (f"{n_clusters} cluster{'s' if n_clusters != 1 else ''} of the training photos' features (PCA {cfg['n_components']} → "
                f"HDBSCAN min_samples {cfg['min_samples']}, min_cluster_size {cfg['min_cluster_size']} for k → KMeans) "
                f"over {cfg.get('cluster_views', 1)} views of each (crops, damage seeds), fitted after epoch "
                f"{cfg['cluster_epoch']}: views per cluster {summary['clusters']}, photos per cluster (by the most of "
                f"their views) {summary.get('photos_per_cluster')}: `clusters.png`.{one_class}"
                if summary.get("clusters") else "No clusterer: class 0 always (the BASELINE row).")
    loss = "L1 loss" + (f" + {cfg['lpips_weight']:g} × LPIPS (alex)" if cfg.get("lpips_weight") else "")
    strengths = (f"; trained at random strengths: each patch's every kind scaled by its own U(0, 1) draw, "
                 f"{cfg.get('clean_share', 0):.0%} of the patches left clean" if cfg.get("random_strength") else
                 "; trained at the recipe's full strengths")
    validation = (f"the first {cfg['val_images']} photos of {Path(cfg['val_data']).name}" if cfg.get("val_data") else
                  f"the last {cfg['val_images']} photos of {Path(cfg['data']).name}, held out of training")
    after = (f", chosen among the epochs after the clusterer was fitted (from epoch {cfg['cluster_epoch'] + 1})"
             if summary.get("clusters") else "")
    body = f"""A {summary['parameters']:,}-parameter U-Net (the suite's `tasks/unet.py`, width {cfg['width']}, depth
{cfg['depth']}) that predicts the residual from a damaged photo to the clean one, conditioned on a class id (an
embedding added at the bottleneck).

## Damage: the `{recipe['name']}` recipe
{recipe_row} (strengths in [0, 1]; `tasks/restore/damage.py`), a new damage for every batch of
{cfg['patch_size']}×{cfg['patch_size']} patches of {Path(cfg['data']).name} ({cfg['patches_per_image']} per photo per
epoch, flips and quarter turns){strengths}. Every figure here is at this recipe unless it says otherwise.

## Clusters
{clusters}

## Training
{loss}; Adam lr {cfg['learning_rate']:g}, warm-up and cosine; batch {cfg['train_batch_size']}; {summary['steps']:,}
steps ({summary['epochs_trained']} epochs) in {summary['training_seconds'] / 60:.0f} min (wall clock, 2 CPU cores).
The kept epoch has the best PSNR over {validation}, each damaged with seed {cfg['damage_seed']} + its index (epoch
{summary['best_epoch'] + 1} of {summary['epochs_trained']}, counting from 1: {training.figure(summary['best_val_psnr'], '.2f')} dB){after}.
"""
    if bench is not None:
        table = bench["table"]
        baseline = folder / "baseline" / "metrics.json"
        trained = {"real": summary, "max_class": summary,
                   "baseline": json.loads(baseline.read_text()) if baseline.is_file() else summary}
        epochs = {name: f"{item['best_epoch'] + 1} of {item['epochs_trained']}" for name, item in trained.items()}
        rows = "\n".join(f"| {ROWS.get(name, name)} | {row['l1']:.4f} | {row['psnr']:.2f} | {row['ssim']:.4f} | "
                         f"{row['lpips']:.3f} | {epochs.get(name, '–')} |" for name, row in table.items())
        body += f"""
## The original's experiment, on {bench['n']} photos of {Path(bench['data']).name}
`{bench['command']}`: each photo damaged by the recipe with seed = its index; loss = L1 (the training loss, mean
absolute error on [0, 1]), PSNR and SSIM on RGB (scikit-image), LPIPS (alex, v0.1); epochs = the kept epoch of those
trained. The learned rows are never given the damage mask; the classical rows are.

| row | loss (L1) | PSNR (dB) | SSIM | LPIPS | epochs |
|---|---|---|---|---|---|
{rows}
"""
        by_strength = bench.get("by_strength")
        if by_strength:
            lines = "\n".join(
                f"| × {scale} | " + (f"{row['damaged_psnr']:.2f} | {row['psnr']:.2f} | {row['gain']:+.2f} |"
                                     if row["damaged_psnr"] is not None else f"(the clean photo) | {row['psnr']:.2f} | – |")
                for scale, row in by_strength.items())
            body += f"""
## Lighter damage, and none
The same net on the first photos of that run (up to 20), damaged by the recipe with every strength scaled (× 0: the
clean photo itself, which a restorer should leave as it is); PSNR on RGB against the clean photo.

| strengths | damaged PSNR (dB) | restored PSNR (dB) | gain (dB) |
|---|---|---|---|
{lines}
"""
    body += "\n![Training curves](training_curves.png)\n"
    if summary.get("clusters"):
        body += "\n![Clusters: sizes and the first three PCA coordinates](clusters.png)\n"
    known = {item.name for item in dataclass_fields(Config)}
    body += "\n## Config\n" + training.config_table(Config(**{k: v for k, v in cfg.items() if k in known})) + "\n"
    training.write_model_card(folder, title="Darkroom Restore: a cluster-conditioned U-Net", body=body,
                              metadata={"license": "mit", "library_name": "darkroom", "pipeline_tag": "image-to-image",
                                        "tags": ["image-restoration", "darkroom"]})


def bundle(source: str | Path, destination: str | Path, half: bool = False) -> Path:
    """Copy a trained folder's served files (not its checkpoints) to `destination`, e.g. assets/models/restore; with
    `half`, its weights as float16 (they load into the float32 net: outputs move by about 1e-4), so the BASELINE
    reference fits beside the served net in one 15 MB folder.

    Raises:
        FileNotFoundError: `source` has no model.safetensors.
    """
    import shutil

    from safetensors.torch import load_file, save_file

    source, destination = Path(source), Path(destination)
    if not (source / "model.safetensors").is_file():
        raise FileNotFoundError(f"{source} is not a trained restore folder (no model.safetensors).")
    destination.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name == training.CHECKPOINTS:
            continue
        if item.is_dir():  # replaced whole: an older bundle's clusterer or baseline never survives beside new weights
            shutil.rmtree(destination / item.name, ignore_errors=True)
            shutil.copytree(item, destination / item.name)
        else:
            shutil.copy2(item, destination / item.name)
    if half:
        weights = load_file(source / "model.safetensors")
        save_file({key: value.half() if value.is_floating_point() else value for key, value in weights.items()},
                  destination / "model.safetensors")
    return destination


# ---------------------------------------------------------------------------------------------------------------------
# Serving and scoring
# ---------------------------------------------------------------------------------------------------------------------


def load(source: str | None = None) -> hub.Served[RestoreUNet]:
    """The restorer: `source` > $DARKROOM_RESTORE_MODEL > bundled; CPU, eval mode; facts["clusterer"] when it has one."""
    weights = hub.resolve(TASK, source)
    model = RestoreUNet.from_pretrained(weights.path, map_location="cpu", strict=True).eval()
    clusterer = Clusterer.load(weights.path / CLUSTERER) if (weights.path / CLUSTERER).is_dir() else None
    return hub.Served(model=model, weights=weights, metrics=hub.read_json(weights.path, "metrics.json"),
                      facts={"clusterer": clusterer, **hub.read_json(weights.path, "restore_config.json")})


@torch.inference_mode()
def restore_image(model: RestoreUNet, damaged: Image.Image, photo_class: int = 0, tile: int = 512) -> Image.Image:
    """One damaged RGB photo of any size restored in tiles (context = the receptive radius: no seams)."""
    classes = torch.tensor([photo_class])
    with training.evaluating(model):
        out = tiled(lambda x: model(x, classes), to_tensor(damaged), tile=tile, context=model.receptive_radius,
                    multiple=model.multiple, dtype=torch.uint8)
    return to_image(out)


@dataclass
class Restored:
    """What `predict` returns: the restored photo (RGBA when the upload had transparency), the class it was restored
    as, and a note for the person when there is something to say."""

    image: Image.Image
    photo_class: int
    note: str | None = None


def predict(served: hub.Served[RestoreUNet], image: Image.Image | str, photo_class: int | None = None) -> Restored:
    """Restore one damaged photo of any size.

    Args:
        served: what `load` or `train` returned.
        image: a PIL image or anything `images.load_layers` accepts (EXIF-upright; alpha kept apart and put back).
        photo_class: force a class (the MAX_CLASS oracle tries each); None: the clusterer's, computed once per photo.

    Raises:
        ValueError: an image `load_layers` refuses; a class outside [0, k).
    """
    layers = load_layers(image)
    k = n_classes(served)
    if photo_class is not None and not 0 <= photo_class < k:
        raise ValueError(f"photo_class must be in [0, {k}); got {photo_class}.")
    chosen = photo_class if photo_class is not None else cluster_of(served, layers.rgb)
    result = restore_image(served.model, layers.rgb, chosen)
    if layers.alpha is not None:
        result = result.convert("RGBA")
        result.putalpha(layers.alpha)
    note = "Your image had more than 8 bits per channel; it was restored at 8." if layers.deep else None
    return Restored(image=result, photo_class=chosen, note=note)


def image_scores(restored: Image.Image, clean: Image.Image, lpips: bool) -> dict[str, float]:
    """L1 (the training loss: mean absolute error on [0, 1]), PSNR (dB, RGB, data range 255) and SSIM (RGB,
    scikit-image's defaults; NaN for a photo under 7 pixels a side, its window) and, when asked, LPIPS (alex; raises
    ValueError under perceptual.MIN_SIDE pixels a side)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = np.asarray(restored), np.asarray(clean)
    scores = {"l1": float(np.abs(a.astype(np.float64) - b).mean() / 255.0),
              "psnr": float(peak_signal_noise_ratio(b, a, data_range=255)),
              "ssim": float(structural_similarity(b, a, channel_axis=-1, data_range=255)) if min(a.shape[:2]) >= 7
              else float("nan")}
    if lpips:
        from tasks.perceptual import lpips_distance

        scores["lpips"] = lpips_distance(a, b)
    return scores


def score_photos(served: hub.Served, photos: list[Image.Image], damage_seed: int = 0,
                 recipe: dict[str, float] | None = None, lpips: bool = True, mode: str = "real") -> dict[str, float]:
    """Damage each clean photo (seed damage_seed + i), restore it, and average the scores of the damaged and the
    restored photo against the clean one.

    Args:
        mode: "real" (the clusterer's class), "baseline" (class 0) or "max_class" (each class tried, the best PSNR
            kept: the oracle).

    Returns:
        {"l1", "psnr", "ssim", ["lpips"], "damaged_l1", "damaged_psnr", "damaged_ssim", ["damaged_lpips"], "n"}.
    """
    totals: dict[str, list[float]] = {}
    k = n_classes(served)
    for index, photo in enumerate(photos):
        damaged = damaged_copy(photo, damage_seed + index, recipe)
        if mode == "baseline":
            candidates = [0]
        elif mode == "max_class":
            candidates = list(range(k))
        else:
            candidates = [cluster_of(served, damaged)]
        results = [image_scores(restore_image(served.model, damaged, c), photo, lpips=False) | {"class": c}
                   for c in candidates]
        best = max(results, key=lambda item: item["psnr"])
        scores = image_scores(restore_image(served.model, damaged, best["class"]), photo, lpips) if lpips else best
        for key, value in scores.items():
            if key != "class":
                totals.setdefault(key, []).append(value)
        for key, value in image_scores(damaged, photo, lpips).items():
            totals.setdefault(f"damaged_{key}", []).append(value)
    return {key: float(np.mean(values)) for key, values in totals.items()} | {"n": float(len(photos))}


def evaluate(served: hub.Served[RestoreUNet], data: str = DEFAULT_TEST, mode: str = "real") -> dict[str, float]:
    """`score_photos` over the clean photos `data` names, damaged by the default recipe (seeds 0, 1, ...)."""
    return score_photos(served, [load_rgb(source) for source in photo_sources(data, split="test")], mode=mode)
