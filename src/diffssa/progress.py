"""Progress bars: tqdm when it is installed (the ``progress`` extra), else a silent stand-in.

``progress_bar(iterable=None, **options)`` takes tqdm's options (``total``, ``desc``, ``unit``,
``disable``, ``leave`` ...) and returns an object with ``update``, ``set_postfix``, ``close`` and
iteration, so library code never needs tqdm to run.
"""

from __future__ import annotations

__all__ = ["progress_bar"]


class _Silent:
    """tqdm's interface, doing nothing."""

    def __init__(self, iterable=None, **_options):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(iterable=None, **options):
    """A tqdm progress bar, or a silent stand-in when tqdm is not installed or ``disable`` is true."""
    if options.get("disable"):
        return _Silent(iterable)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable)
    return tqdm(iterable, **options)
