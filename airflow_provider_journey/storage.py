"""Turn a location given by a DAG author into a path object the readers and writers can use.

A location with a URL scheme (``file://``, ``s3://``, ``gs://`` and the like) becomes an
Airflow ``ObjectStoragePath``; a plain local path becomes a ``pathlib.Path``. Code that
takes the result uses only ``open()``, ``exists()``, ``iterdir()``, ``mkdir()``, ``/``
and ``str()``, which both types provide. Checked with ``file://`` on Airflow 3.3.2:
read, write, append, ``iterdir`` and ``mkdir(parents=True, exist_ok=True)`` work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, Union

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

StoragePath: TypeAlias = Union[Path, "ObjectStoragePath"]

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def to_path(location: str | os.PathLike[str] | ObjectStoragePath) -> StoragePath:
    """Convert ``location`` to a ``pathlib.Path`` or an ``ObjectStoragePath``.

    :param location: a local path, a URL such as ``s3://bucket/key`` or an existing
        path object, which is returned unchanged.
    :raises TypeError: if ``location`` is none of these.
    """
    if isinstance(location, Path):
        return location

    if isinstance(location, (str, os.PathLike)):
        text = os.fspath(location)
        if _URL_SCHEME.match(text):
            from airflow.sdk import ObjectStoragePath

            return ObjectStoragePath(text)
        return Path(text)

    # ObjectStoragePath is not os.PathLike, so it lands here; importing Airflow only
    # now keeps the local-path case free of the Airflow import.
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location
    raise TypeError(
        f"expected a path, a URL string or an ObjectStoragePath, got {type(location).__name__}"
    )
