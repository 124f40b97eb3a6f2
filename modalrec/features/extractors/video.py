"""Video: sampled frames through an image extractor, pooled over time, plus motion statistics.

PyAV (which bundles FFmpeg) decodes the first video stream. Frames are sampled at ``fps`` per second at
the centres of equal time slots: a clip of ``T`` seconds gets ``n = clamp(floor(T * fps), 1, max_frames)``
frames, the first decoded frame at or after ``start + (k + 1/2) * T / n`` for ``k = 0 .. n - 1``. So a long
video is covered evenly by ``max_frames`` frames and the same file always gives the same frames. Every
frame goes through a registered image extractor (``image_extractor``, built with ``create_extractor``).

With frame vectors :math:`v_1 .. v_n` (each ``image_dim`` long) and grey 64x64 thumbnails
:math:`g_1 .. g_n` in [0, 1], the output (``dim = 2 * image_dim + 3``) is, in this order:

1. ``image_dim`` values: :math:`\\frac{1}{n} \\sum_t v_t` (mean pooling);
2. ``image_dim`` values: :math:`\\max_t v_t` (max pooling, per dimension);
3. 1 value: the mean of :math:`\\|v_{t+1} - v_t\\|_2` (feature-space motion);
4. 1 value: their standard deviation;
5. 1 value: the mean over :math:`t` of :math:`\\mathrm{mean}\\,|g_{t+1} - g_t|` (pixel motion).

A single-frame clip has all three motion values 0.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from modalrec.errors import ConfigError
from modalrec.features.base import Content, ContentError, Extractor, create_extractor, register_extractor
from modalrec.features.extractors.audio import DECODE_ERRORS
from modalrec.features.extractors.image import ImageExtractor

MOTION_DIMS = 3
THUMBNAIL_SIZE = 64
"""Side of the grey thumbnails compared for the pixel-motion statistic."""

SEEK_GAP_SECONDS = 10.0
"""Seek (to the keyframe before the next sample) instead of decoding through gaps longer than this."""

FRAME_BATCH = 64
"""Frames passed to the image extractor at once."""


@dataclass(frozen=True)
class FramesConfig:
    """Settings of the ``frames`` video extractor."""

    fps: float = 1.0  # frames sampled per second of video
    max_frames: int = 16  # at most this many frames, spread evenly over the whole clip
    image_extractor: str = "handcrafted"  # any registered image extractor, run on every sampled frame
    image_settings: dict[str, str] = field(default_factory=dict)  # that extractor's settings

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ConfigError("extractor.frames.fps", f"must be positive, got {self.fps}")
        if self.max_frames < 1:
            raise ConfigError("extractor.frames.max_frames", f"must be at least 1, got {self.max_frames}")


@dataclass(frozen=True)
class SampledClip:
    """One video after ``load``: its frames prepared by the image extractor, and its pixel motion."""

    frames: list[Any]
    pixel_motion: float


@register_extractor(
    "frames",
    kind="video",
    config=FramesConfig,
    description="frames sampled at a fixed rate through an image extractor, mean+max pooled, plus motion",
)
class FramesExtractor(Extractor):
    """Mean- and max-pooled frame vectors of a video, followed by three motion statistics.

    Args:
        config: Sampling rate, frame budget and the image extractor to run on each frame.
        device: Passed on to the image extractor.

    Shapes:
        - load: path -> :class:`SampledClip` with ``1 .. max_frames`` frames
        - embed: ``B`` clips -> ``(B, 2 * image_dim + 3)`` float32
    """

    config: FramesConfig

    def __init__(self, config: FramesConfig, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self.image_extractor = create_extractor(config.image_extractor, dict(config.image_settings), device)
        if self.image_extractor.kind != "image":
            raise ConfigError(
                "extractor.frames.image_extractor",
                f"expected an image extractor, found '{config.image_extractor}' ({self.image_extractor.kind})",
            )

    @property
    def dim(self) -> int:
        return 2 * self.image_extractor.dim + MOTION_DIMS

    def settings(self) -> dict[str, Any]:
        """Own settings plus the image extractor's (its version changes this extractor's output)."""
        return {**super().settings(), "image": self.image_extractor.settings()}

    def load(self, content: Content) -> SampledClip:
        try:
            with av.open(str(content), metadata_errors="ignore") as container:
                if not container.streams.video:
                    raise ContentError("no video stream")
                images = sample_frames(container, container.streams.video[0], self.config.fps,
                                       self.config.max_frames)
        except DECODE_ERRORS as exc:
            raise ContentError(f"cannot decode video: {exc}") from None
        if not images:
            raise ContentError("no decodable video frame")
        return SampledClip([self._prepare(image) for image in images], pixel_motion(images))

    def _prepare(self, image: Image.Image) -> Any:
        """One frame as the image extractor's ``load`` would give it.

        A built-in image extractor prepares the decoded picture directly; any other reads a temporary PNG.
        """
        if isinstance(self.image_extractor, ImageExtractor):
            return self.image_extractor.prepare(image)
        with tempfile.TemporaryDirectory(prefix="modalrec-frame-") as folder:
            path = Path(folder) / "frame.png"
            image.save(path, compress_level=1)
            return self.image_extractor.load(path)

    def embed(self, prepared: Sequence[SampledClip]) -> np.ndarray:
        vectors = self._frame_vectors([frame for clip in prepared for frame in clip.frames])
        rows, offset = [], 0
        for clip in prepared:
            clip_vectors = vectors[offset : offset + len(clip.frames)].astype(np.float64)  # (n, image_dim)
            offset += len(clip.frames)
            steps = np.linalg.norm(np.diff(clip_vectors, axis=0), axis=1)  # (n - 1,)
            motion = [steps.mean(), steps.std()] if len(steps) else [0.0, 0.0]
            rows.append(np.concatenate([clip_vectors.mean(axis=0), clip_vectors.max(axis=0),
                                        [*motion, clip.pixel_motion]]))
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _frame_vectors(self, frames: list[Any]) -> np.ndarray:
        """The image extractor's vectors, ``FRAME_BATCH`` frames at a time. Shapes: -> (len(frames), image_dim)."""
        chunks = [self.image_extractor.embed(frames[i : i + FRAME_BATCH]) for i in range(0, len(frames), FRAME_BATCH)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.image_extractor.dim), dtype=np.float32)


def sample_times(duration: float | None, start: float, fps: float, max_frames: int) -> list[float]:
    """Target times (seconds) at the centres of equal slots; ``max_frames`` slots of ``1/fps`` if unknown."""
    if duration is None or duration <= 0:
        return [start + (k + 0.5) / fps for k in range(max_frames)]
    count = min(max_frames, max(1, int(duration * fps)))
    return [start + (k + 0.5) * duration / count for k in range(count)]


def sample_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, fps: float, max_frames: int
) -> list[Image.Image]:
    """RGB frames at :func:`sample_times`: the first frame at or after each target time.

    Targets after the last frame are dropped; a clip whose every frame precedes the first target (its
    duration overstated) gives its last frame.
    """
    time_base = stream.time_base
    start = float(stream.start_time * time_base) if stream.start_time is not None and time_base else 0.0
    targets = sample_times(_duration(container, stream), start, fps, max_frames)
    rate = float(stream.guessed_rate or stream.average_rate or 25)
    picked: list[Image.Image] = []
    frames = _timed_frames(container.decode(stream), rate)
    last: tuple[float, av.VideoFrame, bool] | None = None  # (time, frame, has a real timestamp)
    for target in targets:
        if time_base and last is not None and last[2] and target - last[0] > SEEK_GAP_SECONDS:
            container.seek(int(target / time_base), stream=stream)  # to the keyframe at or before
            frames = _timed_frames(container.decode(stream), rate)
        for last in frames:
            if last[0] >= target:
                picked.append(last[1].to_image())
                break
        else:
            break
    if not picked and last is not None:
        picked.append(last[1].to_image())
    return picked


def _timed_frames(frames: Iterator[av.VideoFrame], rate: float) -> Iterator[tuple[float, av.VideoFrame, bool]]:
    for index, frame in enumerate(frames):
        yield (frame.time, frame, True) if frame.time is not None else (index / rate, frame, False)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def pixel_motion(images: Sequence[Image.Image]) -> float:
    """Mean absolute difference of consecutive grey thumbnails, in [0, 1]; 0 for a single frame."""
    if len(images) < 2:
        return 0.0
    size = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    thumbnails = np.stack([np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), np.float32)
                           for image in images]) / 255.0
    return float(np.abs(np.diff(thumbnails, axis=0)).mean())
