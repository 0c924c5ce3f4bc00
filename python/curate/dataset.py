"""Dataset versions opened as Arrow, pandas, polars or Hugging Face datasets; lineage."""

from __future__ import annotations

import getpass
import json
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pyarrow as pa
import pyarrow.dataset as pads

from . import _native


class Dataset:
    """One immutable dataset version (``curate.dataset("web-en@latest")``).

    Its files are checked against the version's manifest (size and blake3 hash) when it is
    opened, so what you read is what the version recorded.
    """

    def __init__(self, reference: str, *, home: Optional[str] = None) -> None:
        info = json.loads(_native.dataset(reference, home))
        #: The resolved reference (``web-en@3``).
        self.reference: str = info["version"]
        #: Records in the version.
        self.rows: int = int(info["rows"])
        #: Where its files are (local paths or object store URLs).
        self.files: List[str] = list(info["locations"])
        #: The version as ``curate datasets show --json`` prints it (parents, sources, tags).
        self.info: Dict[str, Any] = info

    def __repr__(self) -> str:
        return f"Dataset({self.reference!r}, rows={self.rows}, files={len(self.files)})"

    def __len__(self) -> int:
        return self.rows

    def _dataset(self) -> pads.Dataset:
        fmt = "parquet" if all(f.endswith(".parquet") for f in self.files) else "json"
        return pads.dataset(self.files, format=fmt)

    def to_arrow(self, columns: Optional[Sequence[str]] = None) -> pa.Table:
        """The version as one ``pyarrow.Table`` (in file order)."""
        if not self.files:
            return pa.table({})
        return self._dataset().to_table(columns=list(columns) if columns else None)

    def iter_batches(self, batch_size: int = 65536, columns: Optional[Sequence[str]] = None) -> Iterator[pa.RecordBatch]:
        """Streams the version as ``pyarrow.RecordBatch``es, a bounded amount in memory."""
        if not self.files:
            return iter(())
        return iter(self._dataset().to_batches(batch_size=batch_size, columns=list(columns) if columns else None))

    def to_pandas(self, columns: Optional[Sequence[str]] = None) -> Any:
        """The version as a ``pandas.DataFrame``."""
        return self.to_arrow(columns).to_pandas()

    def to_polars(self, columns: Optional[Sequence[str]] = None) -> Any:
        """The version as a ``polars.DataFrame``."""
        import polars

        return polars.from_arrow(self.to_arrow(columns))

    def to_hf(self, columns: Optional[Sequence[str]] = None) -> Any:
        """The version as a Hugging Face ``datasets.Dataset`` (in memory), fingerprinted by
        the version so HF's caches follow it."""
        import datasets
        from datasets.table import InMemoryTable

        fingerprint = "curate-" + self.reference.replace("@", "-").replace("/", "-")
        return datasets.Dataset(InMemoryTable(self.to_arrow(columns)), fingerprint=fingerprint)


def dataset(reference: str, *, home: Optional[str] = None) -> Dataset:
    """Opens a dataset version: ``name@latest``, ``name@3`` or ``name@TAG``."""
    return Dataset(reference, home=home)


def explain(record_id: str, *, home: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """Where a record came from, the operators (name, version, parameters) that touched
    it, where it was dropped and why, which versions hold it, and any forget that removed
    it; ``None`` for an id no run's lineage holds."""
    text = _native.explain(record_id, home)
    return None if text is None else json.loads(text)


def forget(ids: Sequence[str], *, reason: str, actor: Optional[str] = None, purge: bool = False,
           home: Optional[str] = None) -> Dict[str, Any]:
    """Removes source records from every dataset version derived from them: new versions
    without them, an audit entry with ``reason`` and ``actor``; ``purge`` also rewrites older
    versions' files. Returns what it did (``audit``, ``versions``, ``unknown`` ids)."""
    if isinstance(ids, str):
        ids = [ids]
    return json.loads(_native.forget(list(ids), reason, actor or getpass.getuser(), purge, home))
