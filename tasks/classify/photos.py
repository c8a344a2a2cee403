"""Classify photos of clothes: ImageNet-trained AlexNet convolutions, fine-tuned on ordinary people's photos.

    photo ──letterbox on its border colour, size × size──▶ AlexNet features ──mean ⊕ max pool──▶ linear ──▶ 10 classes

The Fashion-MNIST CNN sees a 28×28 light-on-black picture; a garment photographed on a floor or a bed is nothing like
it (46% over the six classes below). This model learns from the photos themselves: the clothing dataset of
alexeygrigorev/clothing-dataset (CC0), read as `../shared/data/extra.sh clothing` writes it (images/<id>.jpg and
labels.csv with image, label, sender_id), split by the person who sent the photos (one sender's photos share a
backdrop). It answers in the ten Fashion-MNIST classes; the six photo labels it learns from map onto them as
PHOTO_LABELS says (the ones scored), and a photo of shoes counts as right for any of the three footwear classes (the
loss is the log of their summed probability), so how it splits shoes among them is not taught by the photos. The
labels ALSO_LEARNED maps (long sleeves and hoodies are Fashion-MNIST's pullovers) are reported, not scored, and
trained on only with `also_learned` (they cost the six scored labels accuracy).

The convolutions start from torchvision's ImageNet AlexNet (Krizhevsky et al. 2012; the weights LPIPS uses,
`tasks.perceptual.weights_path`), the first `frozen_layers` layers kept as they are.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from tasks import training

logger = logging.getLogger(__name__)

FASHION_MNIST = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PHOTO_LABELS = {"T-Shirt": ("T-shirt/top",), "Pants": ("Trouser",), "Dress": ("Dress",), "Shirt": ("Shirt",),
                "Outwear": ("Coat",), "Shoes": ("Sandal", "Sneaker", "Ankle boot")}  # scored labels → right answers
ALSO_LEARNED = {"Longsleeve": ("Pullover",), "Hoodie": ("Pullover",), "Blazer": ("Coat",), "Polo": ("T-shirt/top",),
                "Top": ("T-shirt/top",), "Undershirt": ("T-shirt/top",), "Blouse": ("Shirt",)}  # reported, not scored
LEARNED = {**PHOTO_LABELS, **ALSO_LEARNED}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PhotoClassifier(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="darkroom",
    tags=["image-classification", "clothing", "darkroom"],
    license="mit",
    repo_url="https://huggingface.co/spaces/darkroom/darkroom",
):
    """AlexNet's convolutional features, mean- and max-pooled, and one linear layer.

        (B, 3, S, S) in [0, 1] ─ImageNet normalise─ AlexNet features ─▶ (B, 256, s, s) ─mean ⊕ max─▶ (B, 512) ─▶ (B, 10)
    """

    def __init__(self, size: int = 160, dropout: float = 0.3, class_names: list[str] | None = None):
        super().__init__()
        self.size = size
        self.class_names = list(class_names or FASHION_MNIST)
        self.features = torchvision.models.alexnet().features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(512, len(self.class_names))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, size, size) float in [0, 1] → logits (B, num_classes)."""
        features = self.features((images - self.mean) / self.std)
        return self.head(self.dropout(torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1)))


def load_backbone(model: PhotoClassifier, path: Path) -> None:
    """Copy ImageNet AlexNet's `features.*` weights (torchvision's key names, a safetensors file) into `model`.

    Raises:
        FileNotFoundError: no file at `path`.
    """
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"No AlexNet weights at {path}: run `python -m tasks.perceptual rebuild` (make test does).")
    model.features.load_state_dict({key.removeprefix("features."): value for key, value in load_file(path).items()})


def letterbox(image: Image.Image, size: int) -> Image.Image:
    """RGB `image` shrunk to fit size × size (aspect kept, bicubic) and centred on its border's median colour."""
    image = image.convert("RGB")
    scale = size / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                           Image.Resampling.BICUBIC)
    pixels = np.asarray(resized)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    canvas = Image.new("RGB", (size, size), tuple(int(v) for v in np.median(border, axis=0)))
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return canvas


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB PIL images of one size → uint8 (N, 3, H, W)."""
    return torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2).contiguous()


@dataclass
class ClothingPhotos:
    """Photos of a clothing folder: their files, labels (keys of the mapping they were read with) and senders."""

    paths: list[Path]
    labels: list[str]
    senders: list[str]

    def subset(self, senders: set[str]) -> ClothingPhotos:
        keep = [i for i, sender in enumerate(self.senders) if sender in senders]
        return ClothingPhotos([self.paths[i] for i in keep], [self.labels[i] for i in keep],
                              [self.senders[i] for i in keep])


def read_clothing(folder: str | Path, mapping: dict[str, tuple[str, ...]] = PHOTO_LABELS) -> ClothingPhotos:
    """The photos of `folder` (images/<image>.jpg, labels.csv: image, label, sender_id) whose label is one of
    `mapping`'s (default: the scored ones).

    Raises:
        FileNotFoundError: no labels.csv in `folder`, or a listed image that is missing.
    """
    folder = Path(folder)
    if not (folder / "labels.csv").is_file():
        raise FileNotFoundError(f"{folder} has no labels.csv (the layout of `extra.sh ... clothing`).")
    paths, labels, senders = [], [], []
    with open(folder / "labels.csv", newline="") as file:
        for row in csv.DictReader(file):
            if row["label"] in mapping:
                path = folder / "images" / f"{row['image']}.jpg"
                if not path.is_file():
                    raise FileNotFoundError(f"{path} is listed in labels.csv but missing.")
                paths.append(path)
                labels.append(row["label"])
                senders.append(row["sender_id"])
    return ClothingPhotos(paths, labels, senders)


def label_mask(labels: list[str], class_names: list[str]) -> torch.Tensor:
    """(N, num_classes) bool: the classes that are a right answer for each photo label (LEARNED)."""
    mask = torch.zeros(len(labels), len(class_names), dtype=torch.bool)
    for row, label in enumerate(labels):
        for name in LEARNED[label]:
            mask[row, class_names.index(name)] = True
    return mask


def set_loss(logits: torch.Tensor, right: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of −log Σ_{c right} softmax(logits)_c, optionally weighted per photo: cross-entropy where one class is
    right, and "any footwear" for shoes. logits (B, K) float, right (B, K) bool, weight (B,) or None."""
    log_p = logits.float().log_softmax(-1).masked_fill(~right, float("-inf")).logsumexp(-1)
    if weight is None:
        return -log_p.mean()
    return -(log_p * weight).sum() / weight.sum()


def augment(batch: torch.Tensor, generator: torch.Generator, shift: float = 0.075) -> torch.Tensor:
    """uint8 (B, 3, S, S) letterboxed photos → float (B, 3, S, S) in [0, 1], each moved by up to `shift` × S pixels
    each way (its edges repeated into the gap, the scale kept: served photos are letterboxed at the same size),
    randomly flipped, its brightness and contrast each scaled by up to ±10%."""
    out = []
    size = batch.shape[-1]
    pad = round(shift * size)
    for image in batch:
        padded = F.pad(image[None].float(), (pad, pad, pad, pad), mode="replicate")[0]
        top, left = (int(torch.randint(0, 2 * pad + 1, (1,), generator=generator)) for _ in range(2))
        crop = padded[:, top:top + size, left:left + size] / 255.0
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        gain, shift = (torch.rand(2, generator=generator) - 0.5) * 0.2
        mean = crop.mean()
        out.append(((crop - mean) * (1 + gain) + mean * (1 + shift)).clamp(0, 1))
    return torch.stack(out)


@torch.inference_mode()
def probabilities(model: PhotoClassifier, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Softmax (N, K) float32 on the CPU of uint8 (N, 3, size, size) photos, in eval mode, on the model's device."""
    device = next(model.parameters()).device
    with training.evaluating(model):
        return torch.cat([model(images[i:i + batch_size].to(device).float() / 255.0).float().softmax(-1).cpu()
                          for i in range(0, len(images), batch_size)])


def per_label_accuracy(said: list[str], labels: list[str],
                       mapping: dict[str, tuple[str, ...]] = PHOTO_LABELS) -> dict[str, float]:
    """Per `mapping` label present in `labels`: the share of its photos whose answer in `said` is a right one
    (for Shoes, any footwear class). Photos of other labels are left out."""
    per_label = {}
    for label, right in mapping.items():
        chosen = [answer for answer, truth in zip(said, labels) if truth == label]
        if chosen:
            per_label[label] = float(np.mean([answer in right for answer in chosen]))
    return per_label


def score(model: PhotoClassifier, images: torch.Tensor, labels: list[str], batch_size: int = 64,
          mapping: dict[str, tuple[str, ...]] = PHOTO_LABELS) -> dict:
    """Mean per-label accuracy over the `mapping` labels present ("photos_accuracy"; default the scored six), each
    label's ("photos_per_class"), the photos scored ("n") and, per label, how often each class was the answer
    ("answers"). Photos of other labels are left out."""
    predictions = probabilities(model, images, batch_size).argmax(-1).tolist()
    said = [model.class_names[index] for index in predictions]
    per_label = per_label_accuracy(said, labels, mapping)
    answers = {label: {name: n for name in model.class_names
                       if (n := sum(1 for a, t in zip(said, labels) if t == label and a == name))}
               for label in per_label}
    return {"photos_accuracy": float(np.mean(list(per_label.values()))) if per_label else float("nan"),
            "photos_per_class": per_label, "n": sum(label in mapping for label in labels), "answers": answers,
            "said": said}


def sender_interval(said: list[str], labels: list[str], senders: list[str], draws: int = 1000, seed: int = 0,
                    mapping: dict[str, tuple[str, ...]] = PHOTO_LABELS) -> tuple[float, float]:
    """95% bootstrap interval of the mean per-label accuracy, resampling senders (a sender's photos share a
    backdrop, so they are not independent): `draws` resamples with replacement, percentiles 2.5 and 97.5."""
    rng = np.random.default_rng(seed)
    by_sender: dict[str, list[int]] = {}
    for index, sender in enumerate(senders):
        if labels[index] in mapping:
            by_sender.setdefault(sender, []).append(index)
    names = sorted(by_sender)
    means = []
    for _ in range(draws):
        chosen = [i for name in rng.choice(names, len(names)) for i in by_sender[name]]
        per_label = per_label_accuracy([said[i] for i in chosen], [labels[i] for i in chosen], mapping)
        means.append(float(np.mean(list(per_label.values()))))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def confusion(answers: dict[str, dict[str, int]]) -> str:
    """`score`'s answers as a markdown table: photo label × the classes the model answered."""
    classes = [name for name in FASHION_MNIST if any(name in row for row in answers.values())]
    lines = ["| photo label | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    lines += [f"| {label} | " + " | ".join(str(row.get(name, "")) for name in classes) + " |"
              for label, row in answers.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def split_senders(photos: ClothingPhotos, seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """The senders of each part ("train", "val", "test"), seeded (`training.split_groups`): one sender's photos in
    one part only, the same split for the same folder and seed."""
    return training.split_groups(sorted(set(photos.senders)), seed, val_fraction, test_fraction)


def load_part(photos: ClothingPhotos, size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size): each photo `letterbox`ed."""
    from tasks.images import load_rgb

    if not photos.paths:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return to_tensor([letterbox(load_rgb(path), size) for path in photos.paths])


def train(cfg, accelerator=None):
    """Fine-tune the photo classifier on the train senders of `cfg.photos`, keep the epoch with the best validation
    accuracy (mean per label, val senders), write `cfg.output_dir` (weights, metrics.json with the split and the test
    senders' scores, README.md). `cfg`: a `tasks.classify.Config` with model "photos".

    Returns:
        `tasks.classify.load(cfg.output_dir)`.

    Raises:
        FileNotFoundError: no clothing folder at cfg.photos, or no AlexNet weights (see `load_backbone`).
        ValueError: frozen_layers outside [0, 13], or a split part without photos.
    """
    import json
    from dataclasses import asdict

    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from tasks import classify
    from tasks.perceptual import weights_path
    from tasks.training import count_parameters

    if not 0 <= cfg.frozen_layers <= 13:
        raise ValueError(f"frozen_layers must be in [0, 13] (AlexNet has 13 feature layers); got {cfg.frozen_layers}.")
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)
    photos = read_clothing(cfg.photos, LEARNED)
    split = split_senders(photos, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    parts = {part: photos.subset(set(senders)) for part, senders in split.items()}
    if not cfg.also_learned:  # the same split (it is over every learned label's senders), the scored labels only
        scored = [i for i, label in enumerate(parts["train"].labels) if label in PHOTO_LABELS]
        parts["train"] = ClothingPhotos([parts["train"].paths[i] for i in scored],
                                        [parts["train"].labels[i] for i in scored],
                                        [parts["train"].senders[i] for i in scored])
    empty = [part for part, subset in parts.items() if not subset.paths]
    if empty:
        raise ValueError(f"{cfg.photos}: no photos in the {', '.join(empty)} part of the split by sender "
                         f"({len(set(photos.senders))} senders).")
    train_x, val_x = load_part(parts["train"], cfg.photo_size), load_part(parts["val"], cfg.photo_size)
    train_right = label_mask(parts["train"].labels, FASHION_MNIST)
    counts = {label: parts["train"].labels.count(label) for label in LEARNED}
    present = sum(1 for count in counts.values() if count)
    weights = torch.tensor([len(train_x) / (present * counts[label])
                            for label in parts["train"].labels])  # each label weighs alike, however many photos

    model = PhotoClassifier(size=cfg.photo_size, dropout=cfg.dropout)
    load_backbone(model, Path(cfg.backbone) if cfg.backbone else (weights_path() or Path("lpips-alexnet-features")))
    for index, layer in enumerate(model.features):
        layer.requires_grad_(index >= cfg.frozen_layers)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                                  weight_decay=cfg.weight_decay)
    epoch_steps = training.steps_per_epoch(len(train_x), cfg)
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, epoch_steps)
    run = training.Run(cfg, accelerator, model, optimizer, scheduler,
                       {"model": "photos", "photos": len(photos.paths), **training.loop_shape(cfg, accelerator)},
                       note={"patience": cfg.patience})
    state = run.state
    state.history.setdefault("val_accuracy", [])
    model, optimizer = accelerator.prepare(model, optimizer)
    logger.info("***** classify photos: training *****\n  photos train/val/test = %d / %d / %d (senders %d / %d / "
                "%d)\n  parameters = %d (trained %d)\n  epochs = %d, steps = %d, batch = %d, lr = %g, device = %s",
                len(parts["train"].paths), len(parts["val"].paths), len(parts["test"].paths), len(split["train"]),
                len(split["val"]), len(split["test"]), count_parameters(model),
                sum(p.numel() for p in model.parameters() if p.requires_grad), cfg.num_epochs, total_steps,
                cfg.train_batch_size, cfg.learning_rate, accelerator.device)
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc="classify photos")
    losses: list[float] = []
    while state.epoch < cfg.num_epochs and state.global_step < total_steps and not state.stopped_early:
        model.train()
        for index, layer in enumerate(accelerator.unwrap_model(model).features):
            layer.train(index >= cfg.frozen_layers)  # (AlexNet has no BatchNorm; dropout is in the head only)
        for batch in training.epoch_batches(len(train_x), cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            images = train_x[batch.indices]
            images = (augment(images, torch.Generator().manual_seed(batch.draw)) if cfg.augment
                      else images.float() / 255.0)
            right, weight = train_right[batch.indices], weights[batch.indices]
            images, right, weight = (t.to(accelerator.device) for t in (images, right, weight))
            with training.accumulating(accelerator, model, batch):
                loss = set_loss(model(images), right, weight)
                training.backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
            training.record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                run.save()
        else:
            training.sync_buffers(accelerator, model)
            accuracy = score(accelerator.unwrap_model(model), val_x, parts["val"].labels,
                             cfg.eval_batch_size)["photos_accuracy"]
            logger.info("epoch %d: validation accuracy %.4f (mean over the scored labels)", state.epoch, accuracy)
            state.history["val_accuracy"].append(accuracy)
            run.end_epoch(value=accuracy, val_loss=1.0 - accuracy, improved=state.is_better(accuracy, maximize=True),
                          model=accelerator.unwrap_model(model), patience=cfg.patience)
            run.save()
    progress.close()
    model = run.finish(model)
    if accelerator.is_main_process:
        training.save_atomically(model.save_pretrained, output_dir)
        test_x = load_part(parts["test"], cfg.photo_size)
        test = score(model, test_x, parts["test"].labels, cfg.eval_batch_size)
        val = score(model, val_x, parts["val"].labels, cfg.eval_batch_size)
        also = score(model, test_x, parts["test"].labels, cfg.eval_batch_size, ALSO_LEARNED)
        test["interval"] = sender_interval(test.pop("said"), parts["test"].labels, parts["test"].senders)
        val.pop("said"), also.pop("said")
        training.plot_training_curves(state.history, output_dir / "training_curves.png",
                                      "classify photos: loss (−log of the right classes' probability)",
                                      val_label="1 − validation accuracy (per epoch)")
        summary = {"model": "photos", "val": val, "test": test, "test_also_learned": also,
                   "parameters": count_parameters(model),
                   "photos": {part: len(subset.paths) for part, subset in parts.items()},
                   "senders": {part: len(senders) for part, senders in split.items()}, "split": split,
                   "epochs_trained": state.epoch, "best_epoch": state.best_epoch, "best_val_accuracy": state.best_metric,
                   "stopped_early": state.stopped_early, "resumed": state.resumed, "steps": state.global_step,
                   "training_seconds": round(state.seconds, 1), "device": str(accelerator.device),
                   "config": asdict(cfg)}
        (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        write_card(output_dir, summary)
    accelerator.wait_for_everyone()
    return classify.load(str(output_dir))


def write_card(folder: Path, summary: dict) -> None:
    """folder/README.md: what the photo model is, its split, its scores on the val and test senders."""
    cfg, test, val = summary["config"], summary["test"], summary["val"]
    also = summary.get("test_also_learned", {"photos_per_class": {}, "answers": {}})
    also_labels = ", ".join(f"{label} ({' / '.join(ALSO_LEARNED[label])})" for label in ALSO_LEARNED)
    also_rows = "\n".join(f"| {label} → {' / '.join(ALSO_LEARNED[label])} | {value:.1%} ({sum(also['answers'][label].values())} photos) |"
                          for label, value in also["photos_per_class"].items())
    also_sentence = (f"It also learned from {also_labels} (not scored)." if cfg.get("also_learned") else
                     f"Photos labelled {also_labels} were not trained on (`--also_learned` trains on them too).")
    trained = "trained on" if cfg.get("also_learned") else "never trained on"
    interval = (f" (95% bootstrap interval over its senders: {test['interval'][0]:.1%} to {test['interval'][1]:.1%})"
                if test.get("interval") else "")
    resumed = "".join(f"\n- Resumed from `{entry['from']}`." for entry in summary.get("resumed", []))
    per_label = "\n".join(f"| {label} → {' / '.join(PHOTO_LABELS[label])} | {val['photos_per_class'].get(label, float('nan')):.1%} | "
                          f"{test['photos_per_class'].get(label, float('nan')):.1%} |" for label in PHOTO_LABELS)
    body = f"""
A {summary['parameters']:,}-parameter classifier for photos of clothes: ImageNet-trained AlexNet convolutions
(torchvision's weights, as LPIPS uses them; the first {cfg['frozen_layers']} of its 13 feature layers frozen: 6 =
conv1 and conv2 with their ReLU and pooling), mean- and max-pooled,
then one linear layer onto the ten Fashion-MNIST classes. Input: the photo letterboxed on its border's median colour
at {cfg['photo_size']}×{cfg['photo_size']}. It serves the Classify tab for photos; Fashion-MNIST-like pictures (gray
on black) go to the 28×28 CNN.

## Data and split
{sum(summary['photos'].values()):,} CC0 photos of clothes taken by ordinary people (alexeygrigorev/clothing-dataset) with
one of the six scored labels below or one of the other labels with a Fashion-MNIST counterpart, split by sender with
seed {cfg['seed']} (the train part trained on: its photos of {'every one of these labels' if cfg.get('also_learned') else 'the six scored labels'}): train / val / test
{summary['photos']['train']} / {summary['photos']['val']} / {summary['photos']['test']} photos from
{summary['senders']['train']} / {summary['senders']['val']} / {summary['senders']['test']} senders (their ids in
metrics.json). {also_sentence} Other labels (Shorts, Skirt, Hat, ...) are not used. Shoes count as right for Sandal, Sneaker or Ankle boot; the photos do not say which, so the model's choice
among the three is not taught; Bag has no photos and the model hardly ever answers it.

## Results (mean accuracy over the six labels; photos of senders never trained on)
Validation (chose the epoch): **{val['photos_accuracy']:.1%}** on {val['n']} photos. Test: **{test['photos_accuracy']:.1%}**
on {test['n']} photos{interval}.

| photo label → right answers | val | test |
|---|---|---|
{per_label}

What the model answered on the test senders' photos:

{confusion(test['answers'])}

The other labels with a Fashion-MNIST counterpart, on the same senders' photos (not part of the score above; {trained}):

| photo label → right answer | test |
|---|---|
{also_rows}

## Training
Fine-tuned {summary['steps']:,} steps ({summary['epochs_trained']} epochs, best {summary['best_epoch'] + 1}) in
{summary['training_seconds'] / 60:.0f} min on {summary.get('device', 'cpu')}: AdamW lr {cfg['learning_rate']:g}, weight decay
{cfg['weight_decay']:g}, batch {cfg['train_batch_size']}, warm-up then cosine; each label weighted alike; random
shifts of up to 7.5% of the side (edges repeated), flips, ±10% brightness and contrast. Loss: −log of the summed
probability of the right answers.{resumed}

![Training curves](training_curves.png)
"""
    training.write_model_card(folder, title="Darkroom Classify: photos of clothes", body=body,
                              metadata={"license": "mit", "library_name": "darkroom",
                                        "pipeline_tag": "image-classification",
                                        "tags": ["image-classification", "clothing", "darkroom"]})
