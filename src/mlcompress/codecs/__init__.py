"""Every codec module; importing this package fills the registry."""

from . import classical  # noqa: F401
