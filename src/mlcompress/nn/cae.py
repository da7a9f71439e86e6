"""The thesis's convolutional autoencoder (CAE): 52,067 parameters, 8x downsampling.

The layout is the classic Keras image-denoising/compression autoencoder the thesis used, with
3x3 kernels, 'same' (zero) padding and ReLU after every convolution except the last (sigmoid)::

    x: float N x 3 x H x W in 0..1, H and W multiples of 8
    g_a (encoder)                               params
      Conv 3->64,  ReLU        H   x W   x 64     1,792
      MaxPool 2                H/2 x W/2 x 64
      Conv 64->32, ReLU        H/2 x W/2 x 32    18,464
      MaxPool 2                H/4 x W/4 x 32
      Conv 32->16, ReLU        H/4 x W/4 x 16     4,624
      MaxPool 2                H/8 x W/8 x 16
      Conv 16->16, ReLU        H/8 x W/8 x 16     2,320   <- y, the latent (>= 0)
    g_s (decoder)
      Upsample 2 (nearest)     H/4 x W/4 x 16
      Conv 16->32, ReLU        H/4 x W/4 x 32     4,640
      Upsample 2               H/2 x W/2 x 32
      Conv 32->64, ReLU        H/2 x W/2 x 64    18,496
      Upsample 2               H   x W   x 64
      Conv 64->3, sigmoid      H   x W   x 3      1,731
                                          total  52,067

So a 32x32x3 CIFAR block (3,072 values) becomes a 4x4x16 latent (256 values), a 12:1 reduction
*before* any quantisation or entropy coding. The 16->16 convolution sits in the encoder here (the
latent is its ReLU output); in the Keras original it is sometimes drawn as the first decoder layer,
acting on the pooled 4x4x16 map. Both layouts have exactly the same 52,067 parameters; we put it in
the encoder because its ReLU output is sparser (many exact zeros), which the entropy coder likes.
"""

from __future__ import annotations

#: The parameter count of the thesis's model (asserted by the tests).
THESIS_PARAMETERS = 52_067
#: Spatial downsampling factor of the encoder (three 2x2 max-pools).
FACTOR = 8
#: Channels of the latent.
LATENT_CHANNELS = 16


def build_cae():
    """A fresh, randomly initialised :class:`ThesisCAE` (imports torch)."""
    return _module_class()()


_CLASS = None


def _module_class():
    """Define the torch module class on first use, so importing this module never imports torch."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch
    from torch import nn

    def conv(cin: int, cout: int) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, kernel_size=3, padding=1)

    class ThesisCAE(nn.Module):
        """The thesis's convolutional autoencoder (see the module docstring for the diagram).

        ``encode(x)``: float N x 3 x H x W in 0..1 (H, W multiples of 8) -> N x 16 x H/8 x W/8, >= 0.
        ``decode(y)``: N x 16 x h x w -> N x 3 x 8h x 8w in 0..1.
        ``forward(x)`` = ``decode(encode(x))``, trained with MSE.
        """

        def __init__(self) -> None:
            super().__init__()
            self.g_a = nn.Sequential(
                conv(3, 64), nn.ReLU(), nn.MaxPool2d(2),
                conv(64, 32), nn.ReLU(), nn.MaxPool2d(2),
                conv(32, 16), nn.ReLU(), nn.MaxPool2d(2),
                conv(16, 16), nn.ReLU(),
            )
            self.g_s = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), conv(16, 32), nn.ReLU(),
                nn.Upsample(scale_factor=2, mode="nearest"), conv(32, 64), nn.ReLU(),
                nn.Upsample(scale_factor=2, mode="nearest"), conv(64, 3), nn.Sigmoid(),
            )

        def encode(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.g_a(x)

        def decode(self, y: "torch.Tensor") -> "torch.Tensor":
            return self.g_s(y)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.g_s(self.g_a(x))

    _CLASS = ThesisCAE
    return _CLASS


def count_parameters(model) -> int:
    """Number of trainable parameters of a torch module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
