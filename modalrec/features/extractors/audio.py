"""Audio: a log-mel spectrogram summary of a sound file or of a video's sound track.

PyAV (which bundles FFmpeg) decodes any container it knows, audio files and videos alike, and resamples
the first audio stream to mono at ``sample_rate``. The spectrogram comes from :func:`torch.stft` and a
triangular mel filterbank built here (HTK mel scale, no torchaudio or librosa):

.. math::

    m(f) = 2595 \\log_{10}(1 + f / 700), \\qquad
    L_{b,t} = \\log\\big(\\textstyle\\sum_k H_{b,k} |X_{k,t}|^2 + \\epsilon\\big)

with :math:`X` the STFT (Hann window), :math:`H` the filterbank of ``n_mels`` triangles evenly spaced on the
mel scale between 0 Hz and the Nyquist frequency, and MFCCs the orthonormal DCT-II of :math:`L` over bands.

The vector summarises the clip over time, in this order (``dim = 2 * n_mels + 2 * n_mfcc``):

1. ``n_mels`` values: the mean over frames of each log-mel band;
2. ``n_mels`` values: their standard deviation over frames;
3. ``n_mfcc`` values: the mean of each MFCC (absent when ``n_mfcc`` is 0);
4. ``n_mfcc`` values: their standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import torch

from modalrec.errors import ConfigError
from modalrec.features.base import Content, ContentError, Extractor, register_extractor

LOG_EPSILON = 1e-10
"""Added to the mel energies before the logarithm, so silence stays finite (log gives about -23)."""

DECODE_ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError)
"""What PyAV raises for unreadable, truncated or mislabelled files."""


@dataclass(frozen=True)
class LogMelConfig:
    """Settings of the ``logmel`` audio extractor."""

    sample_rate: int = 16000  # Hz; the sound is resampled to mono at this rate
    n_mels: int = 64  # mel bands
    n_mfcc: int = 20  # MFCCs taken from the DCT of the log-mel bands; 0 leaves them out
    max_seconds: float = 30.0  # only the first max_seconds of sound are read
    window_seconds: float = 0.025  # STFT window (Hann) length
    hop_seconds: float = 0.010  # STFT hop between frames

    def __post_init__(self) -> None:
        checks = [
            ("sample_rate", self.sample_rate >= 1000, "must be at least 1000 Hz"),
            ("n_mels", self.n_mels >= 1, "must be at least 1"),
            ("n_mfcc", 0 <= self.n_mfcc <= self.n_mels, "must be between 0 and n_mels"),
            ("max_seconds", self.max_seconds > 0, "must be positive"),
            ("window_seconds", self.window_seconds * self.sample_rate >= 2, "must span at least 2 samples"),
            ("hop_seconds", self.hop_seconds * self.sample_rate >= 1, "must span at least 1 sample"),
        ]
        for key, valid, message in checks:
            if not valid:
                raise ConfigError(f"extractor.logmel.{key}", f"{message}, got {getattr(self, key)}")

    @property
    def n_fft(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return round(self.hop_seconds * self.sample_rate)


@register_extractor(
    "logmel",
    kind="audio",
    config=LogMelConfig,
    description="mean and std over time of log-mel bands and MFCCs (PyAV decoding, torch STFT)",
)
class LogMelExtractor(Extractor):
    """Summary statistics of a clip's log-mel spectrogram and MFCCs.

    Args:
        config: Sample rate, band counts, clip length and STFT geometry.
        device: Where the STFT runs.

    Shapes:
        - load: path -> waveform ``(num_samples,)`` float32, mono, at ``sample_rate``
        - embed: ``B`` waveforms -> ``(B, 2 * n_mels + 2 * n_mfcc)`` float32
    """

    config: LogMelConfig

    def __init__(self, config: LogMelConfig, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self.mel_filters = mel_filterbank(config.n_mels, config.n_fft, config.sample_rate).to(self.device)
        self.dct = dct_matrix(config.n_mels, config.n_mfcc).to(self.device)
        self.window = torch.hann_window(config.n_fft, device=self.device)

    @property
    def dim(self) -> int:
        return 2 * self.config.n_mels + 2 * self.config.n_mfcc

    def load(self, content: Content) -> np.ndarray:
        return decode_audio(content, self.config.sample_rate, self.config.max_seconds)

    def embed(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            rows = [self._summary(torch.from_numpy(waveform).to(self.device)) for waveform in prepared]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _summary(self, waveform: torch.Tensor) -> np.ndarray:
        log_mel = self.log_mel(waveform)  # (n_mels, T)
        parts = [log_mel.mean(dim=1), log_mel.std(dim=1, unbiased=False)]
        if self.config.n_mfcc:
            mfcc = self.dct @ log_mel  # (n_mfcc, T)
            parts += [mfcc.mean(dim=1), mfcc.std(dim=1, unbiased=False)]
        return torch.cat(parts).cpu().numpy()

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram of one mono waveform.

        Shapes:
            - waveform: ``(num_samples,)``
            - output: ``(n_mels, num_frames)``; a clip shorter than one window is zero-padded to one
        """
        n_fft = self.config.n_fft
        if waveform.numel() < n_fft:
            waveform = torch.nn.functional.pad(waveform, (0, n_fft - waveform.numel()))
        spectrum = torch.stft(
            waveform, n_fft, hop_length=self.config.hop_length, window=self.window, center=True,
            pad_mode="constant", return_complex=True,
        )  # (n_fft // 2 + 1, T)
        power = spectrum.abs().square()
        return torch.log(self.mel_filters @ power + LOG_EPSILON)


def decode_audio(path: Content, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The first ``max_seconds`` of the first audio stream, mono float32 at ``sample_rate``.

    Raises:
        ContentError: If the file cannot be opened or decoded, has no audio stream or no samples.
    """
    wanted = int(max_seconds * sample_rate)
    chunks: list[np.ndarray] = []
    have = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise ContentError("no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    have += chunks[-1].size
                if have >= wanted:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except DECODE_ERRORS as exc:
        raise ContentError(f"cannot decode audio: {exc}") from None
    waveform = np.concatenate(chunks)[:wanted] if chunks else np.zeros(0, dtype=np.float32)
    if waveform.size == 0:
        raise ContentError("the audio stream holds no samples")
    if not np.isfinite(waveform).all():
        raise ContentError("the audio stream decodes to non-finite samples")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters evenly spaced on the HTK mel scale from 0 Hz to ``sample_rate / 2``.

    Filter ``b`` rises linearly from mel point ``b`` to ``b + 1`` and falls to ``b + 2`` (peak 1).

    Shapes:
        - output: ``(n_mels, n_fft // 2 + 1)``
    """
    bin_hz = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    top_mel = 2595.0 * math.log10(1.0 + (sample_rate / 2) / 700.0)
    points_hz = 700.0 * (10.0 ** (torch.linspace(0.0, top_mel, n_mels + 2, dtype=torch.float64) / 2595.0) - 1.0)
    lower, centre, upper = points_hz[:-2, None], points_hz[1:-1, None], points_hz[2:, None]  # (n_mels, 1)
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The first ``n_out`` rows of the orthonormal DCT-II on ``n_in`` points.

    Shapes:
        - output: ``(n_out, n_in)``
    """
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[:1] /= math.sqrt(2.0)  # the constant row; a slice, so n_out = 0 works
    return basis.to(torch.float32)
