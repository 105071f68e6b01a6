"""Where a search's files live: an Optuna artifact store (trained models, checkpoints).

By default a directory beside the SQLite database (``stagetune.db`` ->
``stagetune-artifacts/``); a PostgreSQL search has no default (its workers may
run on machines that share no directory): pass a directory that all of them
mount, an ``s3://bucket`` or ``gs://bucket`` URL, or any Optuna artifact store
from Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagetune.storage._storage import StorageError, sqlite_path, storage_url

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

#: Suffix of the default artifact directory, beside the SQLite file.
ARTIFACTS_SUFFIX = "-artifacts"


def default_artifacts_dir(storage: str | None) -> Path | None:
    """The default artifact directory of a storage argument, ``None`` when not SQLite.

    Example:
        >>> str(default_artifacts_dir("runs/search.db"))
        'runs/search-artifacts'
    """
    if storage is not None and not isinstance(storage, str):
        return None
    path = sqlite_path(storage_url(storage))
    if path is None:
        return None
    return path.with_name(path.stem + ARTIFACTS_SUFFIX)


def open_artifacts(
    artifacts: str | Path | Any | None, storage: Any = None, *, create: bool = True
) -> ArtifactStore | None:
    """The artifact store of a search.

    Args:
        artifacts: A directory, ``file://``, ``s3://bucket`` or ``gs://bucket``
            URL, an Optuna artifact store (returned as is), or ``None`` for the default
            beside a SQLite ``storage``.
        storage: The search's storage argument (a URL or path; an object has no default).
        create: Create the directory when missing; when false, a missing default
            directory gives ``None``.

    Returns:
        The store, or ``None`` (no default for this storage, or nothing stored yet).

    Raises:
        StorageError: The directory cannot be created, or the URL's store is not installed.
    """
    from optuna.artifacts import FileSystemArtifactStore

    if artifacts is not None and not isinstance(artifacts, (str, Path)):
        return artifacts
    if artifacts is None:
        directory = default_artifacts_dir(storage)
        if directory is None or (not create and not directory.is_dir()):
            return None
    else:
        text = str(artifacts)
        if text.startswith(("s3://", "gs://")):
            return _bucket_store(text)
        directory = Path(text.removeprefix("file://"))
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"Cannot create the artifact directory {str(directory)!r}: "
                f"{error.strerror or error}. Choose another --artifacts."
            ) from None
    elif not directory.is_dir():
        raise StorageError(
            f"No artifact directory at {str(directory)!r}: pass --artifacts with the one "
            f"the search used."
        )
    return FileSystemArtifactStore(directory)


def _bucket_store(url: str) -> ArtifactStore:
    scheme, _, rest = url.partition("://")
    bucket = rest.split("/", 1)[0]
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            return Boto3ArtifactStore(bucket)
        from optuna.artifacts import GCSArtifactStore

        return GCSArtifactStore(bucket)
    except ImportError as error:
        package = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise StorageError(
            f"An artifact store at {url!r} needs {package}: pip install {package} ({error})."
        ) from None
