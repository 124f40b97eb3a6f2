r"""Learned filters in the frequency domain of feature vectors (SMORE's spectrum modality fusion).

A feature vector :math:`\mathbf h \in \mathbb R^d` is transformed along its feature dimension with the real FFT
(orthonormal scaling), :math:`\mathcal F(\mathbf h) \in \mathbb C^{\lfloor d/2\rfloor + 1}`, multiplied
element-wise by a learned complex filter and transformed back with the inverse real FFT. By the convolution
theorem, a product in the spectrum is a circular convolution of the feature vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def to_spectrum(x: Tensor) -> Tensor:
    """The orthonormal real FFT along the last dimension. Shapes: (N, d) real -> (N, d // 2 + 1) complex."""
    return torch.fft.rfft(x, dim=-1, norm="ortho")


def from_spectrum(spectrum: Tensor, dim: int) -> Tensor:
    """The inverse of :func:`to_spectrum` for signals of length ``dim``. Shapes: (N, dim // 2 + 1) -> (N, dim)."""
    return torch.fft.irfft(spectrum, n=dim, dim=-1, norm="ortho")


class SpectralFilter(nn.Module):
    r"""A learned complex gain per frequency, :math:`\mathbf W \odot \mathcal F(\mathbf h)`.

    Stored as (real, imaginary) pairs initialised from a standard normal, as in SMORE's code. A filter of
    ones (real 1, imaginary 0) is the identity.

    Args:
        dim: d, the length of the real signal.

    Shapes: spectrum (N, d // 2 + 1) complex -> same.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim // 2 + 1, 2))

    def forward(self, spectrum: Tensor) -> Tensor:
        return spectrum * torch.view_as_complex(self.weight)


class SpectrumFusion(nn.Module):
    r"""SMORE's uni-modal denoising and cross-modality fusion in the frequency domain.

    .. math::
        \hat{\mathbf h}^m = \mathcal F^{-1}\bigl(\mathbf W^m \odot \mathcal F(\mathbf h^m)\bigr), \qquad
        \hat{\mathbf h}^f = \mathcal F^{-1}\Bigl(\mathbf W^f \odot \prod_{m} \mathcal F(\mathbf h^m)\Bigr)

    Args:
        num_modalities: M, the number of input signals.
        dim: d, their common length.

    Shapes: M tensors (N, d) -> M denoised tensors (N, d) and one fused (N, d).
    """

    def __init__(self, num_modalities: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.modality_filters = nn.ModuleList(SpectralFilter(dim) for _ in range(num_modalities))
        self.fusion_filter = SpectralFilter(dim)

    def forward(self, signals: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        spectra = [to_spectrum(signal) for signal in signals]  # M x (N, d // 2 + 1)
        denoised = [from_spectrum(f(s), self.dim) for f, s in zip(self.modality_filters, spectra, strict=True)]
        product = spectra[0]
        for spectrum in spectra[1:]:
            product = product * spectrum
        return denoised, from_spectrum(self.fusion_filter(product), self.dim)
