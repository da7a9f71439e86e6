"""Pillow support for .mlc files: ``PIL.Image.open("x.mlc")`` works after ``import mlcompress``.

The plugin follows Pillow's pattern: ``_accept`` checks the magic in the first bytes, the
``ImageFile`` subclass parses only the fixed 16-byte header in ``_open``, and a decoder decodes
the whole file with :func:`mlcompress.decode` when pixels are needed.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import container
from .errors import Error
from .image import CHANNEL_MODES

FORMAT = "MLC"


def _accept(prefix: bytes) -> bool:
    return container.is_mlc(prefix)


class MlcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "mlcompress container"

    def _open(self) -> None:
        try:
            hdr = container.read_header(self.fp.read(container.FIXED_SIZE))
        except Error as exc:
            raise SyntaxError(str(exc)) from None
        self._mode = CHANNEL_MODES[hdr.channels]
        self._size = (hdr.width, hdr.height)
        self.tile = [ImageFile._Tile(FORMAT, (0, 0) + self.size, 0, (self._mode,))]


class MlcDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        from . import decode

        self.fd.seek(0)
        data = self.fd.read()
        try:
            img = decode(data)
        except Error as exc:
            raise OSError(f"cannot decode .mlc file: {exc}") from None
        self.set_as_raw(img.tobytes(), self.args[0])
        return -1, 0


def register() -> None:
    """Register the .mlc format with Pillow (idempotent)."""
    if FORMAT in Image.OPEN:
        return
    Image.register_open(FORMAT, MlcImageFile, _accept)
    Image.register_extension(FORMAT, ".mlc")
    Image.register_decoder(FORMAT, MlcDecoder)
