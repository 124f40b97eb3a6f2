"""The ``frames`` video and ``logmel`` audio extractors, on small clips written here with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from modalrec.errors import ConfigError
from modalrec.features.base import ContentError, Extractor, available_extractors, create_extractor, register_extractor
from modalrec.features.extract import extract_table
from modalrec.features.extractors.audio import dct_matrix, mel_filterbank
from modalrec.features.extractors.video import MOTION_DIMS, sample_times

SIZE = 64
AUDIO_RATE = 16000


def _encoder(*names: str) -> str:
    return next(name for name in names if name in av.codecs_available)


def write_video(path: Path, *, seconds: float = 2.0, fps: int = 8, moving: bool = True, tone: float | None = 440.0,
                colour: tuple[int, int, int] = (230, 40, 40)) -> Path:
    """An mp4 of a 16-pixel square on grey (moving right 4 pixels a frame, or still), with a sine tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(_encoder("libx264", "h264", "mpeg4"), rate=fps)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(_encoder("aac", "libopus"), rate=AUDIO_RATE) if tone else None
        if audio is not None:
            audio.layout = "mono"
        for index in range(int(seconds * fps)):
            pixels = np.full((SIZE, SIZE, 3), 90, np.uint8)
            left = (4 * index) % (SIZE - 16) if moving else 8
            pixels[24:40, left : left + 16] = colour
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None and tone is not None:
            _encode_tone(container, audio, tone, seconds, AUDIO_RATE)
    return path


def write_sound(path: Path, tone: float, *, seconds: float = 1.0, rate: int = 44100) -> Path:
    """A stereo WAV file holding a sine tone."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "stereo"
        _encode_tone(container, stream, tone, seconds, rate, layout="stereo")
    return path


def _encode_tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, tone: float,
                 seconds: float, rate: int, layout: str = "mono") -> None:
    samples = (0.5 * np.sin(2 * np.pi * tone * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    channels = 2 if layout == "stereo" else 1
    for start in range(0, len(samples), 1024):
        chunk = np.repeat(samples[None, start : start + 1024], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video at all\n")
    return {
        "moving": write_video(folder / "moving.mp4", tone=440.0),
        "static": write_video(folder / "static.mp4", moving=False, tone=2000.0),
        "silent": write_video(folder / "silent.mp4", tone=None),
        "blue": write_video(folder / "blue.mp4", colour=(40, 40, 230)),
        "tone440": write_sound(folder / "tone440.wav", 440.0),
        "corrupt": corrupt,
        "empty": folder / "empty.mp4",
        "text": folder / "notes.mp4",
        "absent": folder / "absent.mp4",
    }


# -- a plain image extractor (not an ImageExtractor), so frames go through a temporary file ------------

@dataclass(frozen=True)
class PixelsConfig:
    side: int = 4  # the image is reduced to side x side RGB pixels


class PixelsExtractor(Extractor):
    """The image's pixels at ``side`` x ``side``, in [0, 1]."""

    config: PixelsConfig

    @property
    def dim(self) -> int:
        return 3 * self.config.side**2

    def load(self, content: object) -> np.ndarray:
        with Image.open(str(content)) as image:
            small = image.convert("RGB").resize((self.config.side,) * 2, Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32).ravel() / 255.0

    def embed(self, prepared: list[np.ndarray]) -> np.ndarray:  # type: ignore[override]
        return np.stack(prepared).astype(np.float32)


@pytest.fixture(scope="module")
def pixels_name() -> str:
    name = "test-video-pixels"
    if name not in {entry.name for entry in available_extractors()}:
        register_extractor(name, kind="image", config=PixelsConfig, description="test: raw pixels")(PixelsExtractor)
    return name


# -- frames ------------------------------------------------------------------------------------------

def test_frames_vector_layout_is_pooled_frames_and_motion(clips: dict[str, Path], pixels_name: str) -> None:
    extractor = create_extractor("frames", {"image_extractor": pixels_name, "fps": 2})
    assert extractor.dim == 2 * 48 + MOTION_DIMS
    clip = extractor.load(clips["moving"])
    assert len(clip.frames) == 4  # 2 s at 2 frames per second
    frames = np.stack(clip.frames)
    vector = extractor.embed([clip])[0]
    np.testing.assert_allclose(vector[:48], frames.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(vector[48:96], frames.max(axis=0), rtol=1e-6)
    steps = np.linalg.norm(np.diff(frames, axis=0), axis=1)
    np.testing.assert_allclose(vector[96:98], [steps.mean(), steps.std()], rtol=1e-5)
    assert vector[98] == pytest.approx(clip.pixel_motion) and vector[98] > 0


def test_frames_defaults_use_handcrafted_and_are_deterministic(clips: dict[str, Path]) -> None:
    extractor = create_extractor("frames")
    image_dim = create_extractor("handcrafted").dim
    first = extractor.embed([extractor.load(clips["moving"]), extractor.load(clips["static"])])
    again = create_extractor("frames").embed([extractor.load(clips["moving"]), extractor.load(clips["static"])])
    assert first.shape == (2, 2 * image_dim + MOTION_DIMS) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert extractor.settings()["image"]["name"] == "handcrafted"


def test_moving_square_has_motion_and_static_clip_has_none(clips: dict[str, Path]) -> None:
    extractor = create_extractor("frames", {"fps": 4})
    moving, static = extractor.embed([extractor.load(clips["moving"]), extractor.load(clips["static"])])
    assert (moving[-MOTION_DIMS:] > 0).all()
    np.testing.assert_allclose(static[-MOTION_DIMS:], 0.0, atol=1e-4)


def test_single_frame_has_zero_motion(clips: dict[str, Path]) -> None:
    extractor = create_extractor("frames", {"max_frames": 1})
    clip = extractor.load(clips["moving"])
    assert len(clip.frames) == 1
    vector = extractor.embed([clip])[0]
    np.testing.assert_array_equal(vector[-MOTION_DIMS:], 0.0)
    half = (len(vector) - MOTION_DIMS) // 2
    np.testing.assert_array_equal(vector[:half], vector[half : 2 * half])  # mean == max of one frame


def test_different_videos_give_different_vectors(clips: dict[str, Path]) -> None:
    extractor = create_extractor("frames")
    red, blue = extractor.embed([extractor.load(clips["moving"]), extractor.load(clips["blue"])])
    assert np.abs(red - blue).max() > 0.05


def test_frame_budget_spreads_samples_over_the_clip(clips: dict[str, Path], pixels_name: str) -> None:
    extractor = create_extractor("frames", {"image_extractor": pixels_name, "fps": 100, "max_frames": 3})
    assert len(extractor.load(clips["moving"]).frames) == 3
    assert sample_times(2.0, 0.0, 1.0, 16) == [0.5, 1.5]
    assert sample_times(120.0, 0.0, 1.0, 4) == [15.0, 45.0, 75.0, 105.0]
    assert sample_times(0.3, 0.0, 1.0, 16) == [0.15]
    assert sample_times(None, 1.0, 2.0, 2) == [1.25, 1.75]


def test_long_clip_is_sampled_through_seeks(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(_encoder("libx264", "h264", "mpeg4"), rate=2, options={"g": "10"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(120):  # 60 s; frame k shows grey level 2k
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 2 * index, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    clip = create_extractor("frames", {"max_frames": 4, "image_extractor": "handcrafted"}).load(path)
    assert len(clip.frames) == 4
    levels = [np.asarray(frame.convert("L"))[16, 16] for frame in clip.frames]
    # targets 7.5, 22.5, 37.5, 52.5 s -> frames 15, 45, 75, 105 -> grey levels 30, 90, 150, 210
    np.testing.assert_allclose(levels, [30, 90, 150, 210], atol=4)


@pytest.mark.parametrize("name", ["corrupt", "empty", "text", "absent", "tone440"])
def test_unusable_video_raises_content_error(clips: dict[str, Path], name: str) -> None:
    with pytest.raises(ContentError):
        create_extractor("frames").load(clips[name])


def test_frames_needs_an_image_extractor() -> None:
    with pytest.raises(ConfigError, match="expected an image extractor"):
        create_extractor("frames", {"image_extractor": "logmel"})
    with pytest.raises(ConfigError, match="fps"):
        create_extractor("frames", {"fps": 0})


# -- logmel ------------------------------------------------------------------------------------------

def test_logmel_shapes_and_determinism(clips: dict[str, Path]) -> None:
    extractor = create_extractor("logmel")
    assert extractor.dim == 2 * 64 + 2 * 20
    waveform = extractor.load(clips["moving"])
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(len(waveform) - 2 * AUDIO_RATE) < 0.1 * AUDIO_RATE
    first = extractor.embed([waveform, extractor.load(clips["static"])])
    assert first.shape == (2, 168) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, create_extractor("logmel").embed([waveform, extractor.load(clips["static"])]))
    assert create_extractor("logmel", {"n_mfcc": 0}).dim == 128


def test_logmel_tells_tones_apart(clips: dict[str, Path]) -> None:
    extractor = create_extractor("logmel")
    low, high = extractor.embed([extractor.load(clips["moving"]), extractor.load(clips["static"])])
    assert np.abs(low - high).max() > 1.0
    assert np.argmax(low[:64]) < np.argmax(high[:64])  # the loudest mel band follows the pitch


def test_logmel_reads_audio_files_resampled_to_mono(clips: dict[str, Path]) -> None:
    waveform = create_extractor("logmel").load(clips["tone440"])  # stereo, 44.1 kHz, 1 s
    assert abs(len(waveform) - AUDIO_RATE) < 0.05 * AUDIO_RATE
    short = create_extractor("logmel", {"max_seconds": 0.25}).load(clips["tone440"])
    assert len(short) == AUDIO_RATE // 4
    video_sound = create_extractor("logmel").embed([create_extractor("logmel").load(clips["moving"])])
    file_sound = create_extractor("logmel").embed([waveform])
    assert np.argmax(video_sound[0, :64]) == np.argmax(file_sound[0, :64])  # both 440 Hz


@pytest.mark.parametrize("name", ["silent", "corrupt", "empty", "text", "absent"])
def test_logmel_without_sound_raises_content_error(clips: dict[str, Path], name: str) -> None:
    with pytest.raises(ContentError):
        create_extractor("logmel").load(clips[name])
    if name == "silent":
        with pytest.raises(ContentError, match="no audio stream"):
            create_extractor("logmel").load(clips[name])


def test_clip_shorter_than_a_window_still_embeds() -> None:
    extractor = create_extractor("logmel")
    vector = extractor.embed([np.zeros(100, dtype=np.float32)])[0]
    assert np.isfinite(vector).all()


def test_mel_filterbank_and_dct() -> None:
    filters = mel_filterbank(64, 400, 16000)
    assert filters.shape == (64, 201) and (filters >= 0).all() and filters.max() <= 1.0 + 1e-6
    peaks = filters.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()  # bands rise in frequency
    dct = dct_matrix(32, 32)
    torch.testing.assert_close(dct @ dct.T, torch.eye(32), atol=1e-5, rtol=0)


def test_extract_table_flags_clips_without_sound(clips: dict[str, Path]) -> None:
    extractor = create_extractor("logmel")
    result = extract_table(extractor, ["a", "b", "c"], [clips["moving"], clips["silent"], clips["static"]],
                           progress=False)
    np.testing.assert_array_equal(result.table.missing, [False, True, False])
    assert [m.item_id for m in result.missing] == ["b"] and "no audio stream" in result.missing[0].reason
    np.testing.assert_allclose(result.table.values[1], result.table.values[[0, 2]].mean(axis=0), rtol=1e-6)
