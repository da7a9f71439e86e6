"""Every codec module; importing this package fills the registry."""

from . import classical  # noqa: F401
from . import restored  # noqa: F401  (after classical: it wraps avif, jpeg and webp)
from . import learned  # noqa: F401
from . import cae  # noqa: F401
from . import rle  # noqa: F401
from . import vq  # noqa: F401
from . import anchors  # noqa: F401
from . import pipeline  # noqa: F401  (last: chains resolve their stages by name)
