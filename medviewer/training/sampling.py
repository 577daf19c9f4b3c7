"""How training batches are sampled and augmented: windows, crops, shifts, mirror images,
partial coverage, intensity jitter, and the CT slices' evidence maps for an
:class:`~medviewer.ai.nets.EvidenceClassifier` (the radiographs' are rendered with their data,
:func:`medviewer.training.data.evidence_target`, so the data's fingerprint covers them).
Pure numpy, seeded by the caller's generator."""

from __future__ import annotations

import numpy as np


def intensity_jitter(rng: np.random.Generator, batch: np.ndarray) -> np.ndarray:
    """Intensity jitter and extra noise (never flips: left and right are anatomy)."""
    batch = batch.astype(np.float32)
    per_sample = (len(batch),) + (1,) * (batch.ndim - 1)
    gain = rng.uniform(0.95, 1.05, per_sample).astype(np.float32)
    noise = rng.standard_normal(batch.shape, dtype=np.float32)
    noise *= rng.uniform(0.0, 0.02, per_sample).astype(np.float32)
    batch = batch * gain + noise
    return batch if batch.ndim >= 4 else batch[:, None]  # [B, C, H, W(, D)]


def random_shift(
    rng: np.random.Generator, *arrays: np.ndarray, limit: int = 12
) -> list[np.ndarray]:
    """Roll all `arrays` by one random in-plane shift of up to `limit` pixels."""
    dr, dc = (int(v) for v in rng.integers(-limit, limit + 1, 2))
    return [np.roll(a, (dr, dc), axis=(-2, -1)) for a in arrays]


def random_shift_with_map(
    rng: np.random.Generator, images: np.ndarray, maps: np.ndarray | None, stride: int = 8
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shift images (and their evidence maps by whole cells, so they stay aligned)."""
    if maps is None:
        return random_shift(rng, images)[0], None
    dr, dc = (int(v) for v in rng.integers(-1, 2, 2))
    shifted = np.roll(images, (dr * stride, dc * stride), axis=(-2, -1))
    return shifted, np.roll(maps, (dr, dc), axis=(-2, -1))


def mirrored(rng: np.random.Generator, images: np.ndarray,
             labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample (images ``[B, C, d0, d1, d2]``, labels ``[B, d0, d1, d2]``) flipped along
    each axis with probability 1/2 and its two in-plane axes (d0, d1) swapped with probability
    1/2: the 16 mirror images of a cube that keep the slice axis d2, image and labels alike.

    For models that judge local shape (a nodule is a nodule in either lung, upside down);
    never for a model whose labels name a side.
    """
    out_images, out_labels = [], []
    for image, label in zip(images, labels, strict=True):
        axes = tuple(a for a in range(3) if rng.random() < 0.5)
        if axes:
            image = np.flip(image, axis=tuple(a + 1 for a in axes))
            label = np.flip(label, axis=axes)
        if rng.random() < 0.5:
            image, label = image.swapaxes(1, 2), label.swapaxes(0, 1)
        out_images.append(np.ascontiguousarray(image))
        out_labels.append(np.ascontiguousarray(label))
    return np.stack(out_images), np.stack(out_labels)


def partial_coverage(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
                     share: float, min_slices: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A `share` of the samples (``[B, C, d0, d1, d2]``, d2 the slice axis) cut to a random
    range of at least `min_slices` slices: air (the samples' minimum) and background beyond.

    A series that covers only part of the chest (thin slices, a capped slice count) reaches
    the model as that range padded with air; the lung model failed on such series (lung Dice
    0.72-0.85 where the whole chest gave 0.99) until it trained on them too.
    """
    images, labels = images.copy(), labels.copy()
    depth = labels.shape[-1]
    for k in range(len(images)):
        if rng.random() >= share or depth <= min_slices:
            continue
        length = int(rng.integers(min_slices, depth))
        start = int(rng.integers(0, depth - length + 1))
        outside = np.ones(depth, dtype=bool)
        outside[start : start + length] = False
        images[k][..., outside] = images[k].min()
        labels[k][..., outside] = 0
    return images, labels


def random_crops(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random `size`-cube of each sample (the samples themselves when they are that size)."""
    if images.shape[-1] == size:
        return images, labels
    out_images, out_labels = [], []
    for image, label in zip(images, labels, strict=True):
        corner = [int(rng.integers(0, n - size + 1)) for n in label.shape]
        box = tuple(slice(c, c + size) for c in corner)
        out_images.append(image[(slice(None), *box)])
        out_labels.append(label[box])
    return np.stack(out_images), np.stack(out_labels)


def evidence_windows(rng: np.random.Generator, images: np.ndarray, maps: np.ndarray,
                     size: int, stride: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Cut a `size`-pixel window from each image (and its evidence map), on the map's cells.

    A window of an image with evidence holds one of its marked cells (chosen at random, at a
    random place in the window), so a positive stays positive; other images give a window at
    random. Small windows make an iteration several times cheaper than the whole image; the
    network is convolutional, so it runs on whole images as trained.

    Parameters
    ----------
    images
        ``[n, H, W]`` (or ``[n, C, H, W]``), H and W multiples of `stride` and >= `size`.
    maps
        ``[n, H // stride, W // stride]`` evidence targets (see :func:`evidence_target`).
    size
        Window side in pixels, a multiple of `stride`.

    Returns
    -------
    The windows ``[n, ..., size, size]`` and their maps ``[n, size // stride, size // stride]``.
    """
    cells = size // stride
    rows, cols = maps.shape[-2:]
    if size % stride or cells > min(rows, cols):
        raise ValueError(f"train_window {size} must be a multiple of {stride} and at most the "
                         f"images' {min(rows, cols) * stride} pixels")
    out_images, out_maps = [], []
    for image, evidence in zip(images, maps, strict=True):
        marked = np.argwhere(evidence > 0)
        if len(marked):
            r, c = marked[rng.integers(len(marked))]
            r0 = int(np.clip(r - rng.integers(cells), 0, rows - cells))
            c0 = int(np.clip(c - rng.integers(cells), 0, cols - cells))
        else:
            r0, c0 = int(rng.integers(rows - cells + 1)), int(rng.integers(cols - cells + 1))
        out_maps.append(evidence[r0:r0 + cells, c0:c0 + cells])
        out_images.append(image[..., r0 * stride:(r0 + cells) * stride,
                                c0 * stride:(c0 + cells) * stride])
    return np.stack(out_images), np.stack(out_maps)


def label_evidence(labels: np.ndarray, stride: int = 8) -> np.ndarray:
    """Where a CT slice's evidence map should fire: the `stride`-pixel cells holding a nodule
    voxel (label 3). Labels ``[n, H, W]`` (H and W multiples of `stride`) give
    ``[n, H // stride, W // stride]`` uint8, cell i covering pixels ``stride*i`` onwards."""
    n, h, w = labels.shape
    cells = (labels == 3).reshape(n, h // stride, stride, w // stride, stride)
    return cells.any(axis=(2, 4)).astype(np.uint8)

