"""Python functions as pipeline steps: ``@curate.map_batches``."""

from __future__ import annotations

import functools
import hashlib
import inspect
import marshal
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import pyarrow as pa

BatchFn = Callable[[pa.RecordBatch], Any]


class MapBatches:
    """A Python function over ``pyarrow.RecordBatch`` as a pipeline step.

    The function receives each batch of records (columns ``id``, ``text``, the input's
    metadata, ``_source``) without a copy and returns one of:

    - a boolean array (or list, NumPy array): the keep mask; dropped records go to the run's
      rejects with reason ``NAME:mask``;
    - a string array: per record, ``None`` to keep it or the reason to drop it
      (``NAME:REASON``);
    - a dict of column name to array, or a ``RecordBatch``: columns to add (declared in
      ``writes``) or replace;
    - the batch itself: nothing changes.

    A function that raises fails its batch: the batch's records are quarantined with the
    exception and their ids, and the run goes on. The step's version and a hash of the
    function's source are part of its cache key, so changing either recomputes the step.
    """

    def __init__(self, func: BatchFn, *, name: Optional[str] = None, version: str = "1",
                 writes: Optional[Mapping[str, Union[pa.DataType, str]]] = None) -> None:
        self.func = func
        self.name = name or func.__name__
        self.version = str(version)
        self.writes: List[Tuple[str, pa.DataType]] = [(k, _data_type(v)) for k, v in (writes or {}).items()]
        declared = ",".join(f"{k}:{t}" for k, t in self.writes)
        self.content_key = hashlib.sha256(f"{self.version}\0{declared}\0".encode() + _source(func)).hexdigest()
        functools.update_wrapper(self, func)

    def __call__(self, batch: pa.RecordBatch) -> Any:
        return self.func(batch)

    def __repr__(self) -> str:
        return f"map_batches({self.name!r}, version={self.version!r})"

    def to_spec(self) -> Dict[str, Any]:
        """The step as a pipeline spec names it."""
        return {"op": self.name}

    def _call(self, batch: pa.RecordBatch) -> Tuple[str, Any]:
        """Calls the function and says what it returned, for the engine."""
        out = self.func(batch)
        if out is batch:
            return ("same", None)
        if isinstance(out, pa.Table):
            out = _one_batch(out)
        if isinstance(out, pa.RecordBatch):
            return _changed_columns(batch, out)
        if isinstance(out, Mapping):
            types = dict(self.writes)
            names = list(out.keys())
            arrays = [_array(out[k], types.get(k) or _input_type(batch, k)) for k in names]
            return ("columns", pa.RecordBatch.from_arrays(arrays, names=names))
        if out is None:
            raise TypeError(f"{self.name} returned None; return a keep mask, drop reasons, a dict of columns or a batch")
        array = _array(out, None)
        if pa.types.is_boolean(array.type):
            return ("mask", array)
        if pa.types.is_string(array.type) or pa.types.is_null(array.type):
            return ("reasons", array.cast(pa.string()))
        raise TypeError(f"{self.name} returned an array of {array.type}; a keep mask is boolean, drop reasons are strings")


def map_batches(func: Optional[BatchFn] = None, *, name: Optional[str] = None, version: str = "1",
                writes: Optional[Mapping[str, Union[pa.DataType, str]]] = None) -> Any:
    """Makes a function over ``pyarrow.RecordBatch`` a pipeline step (see :class:`MapBatches`).

    ``version`` is recorded in provenance and the cache key: bump it when the function's
    behaviour changes through anything its source does not show (a model file, a closure).
    ``writes`` declares the columns it adds, with their Arrow types (``"float64"`` or
    ``pa.float64()``).
    """
    def wrap(f: BatchFn) -> MapBatches:
        return MapBatches(f, name=name, version=version, writes=writes)

    return wrap(func) if func is not None else wrap


def _source(func: Callable[..., Any]) -> bytes:
    try:
        return inspect.getsource(func).encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        return marshal.dumps(code) if code is not None else repr(func).encode()


def _data_type(t: Union[pa.DataType, str]) -> pa.DataType:
    if isinstance(t, pa.DataType):
        return t
    return pa.type_for_alias(t)


def _input_type(batch: pa.RecordBatch, name: str) -> Optional[pa.DataType]:
    i = batch.schema.get_field_index(name)
    return batch.schema.field(i).type if i >= 0 else None


def _array(v: Any, type: Optional[pa.DataType]) -> pa.Array:
    if isinstance(v, pa.ChunkedArray):
        v = v.combine_chunks()
    if isinstance(v, pa.Array):
        return v if type is None or v.type == type else v.cast(type)
    return pa.array(v, type=type)


def _one_batch(t: pa.Table) -> pa.RecordBatch:
    t = t.combine_chunks()
    batches = t.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=t.schema)


def _same(a: pa.Array, b: pa.Array) -> bool:
    """Whether two arrays are views of the same memory (a column passed through)."""
    if a.type != b.type or len(a) != len(b) or a.offset != b.offset:
        return False
    return [x.address if x else 0 for x in a.buffers()] == [x.address if x else 0 for x in b.buffers()]


def _changed_columns(batch: pa.RecordBatch, out: pa.RecordBatch) -> Tuple[str, Any]:
    """The columns of ``out`` that are not the input's own, untouched: only those cross back
    (and are checked) again."""
    keep = []
    for i, field in enumerate(out.schema):
        j = batch.schema.get_field_index(field.name)
        if j < 0 or not _same(out.column(i), batch.column(j)):
            keep.append(i)
    if not keep and out.num_rows == batch.num_rows:
        return ("same", None)
    return ("columns", pa.RecordBatch.from_arrays([out.column(i) for i in keep], names=[out.schema.field(i).name for i in keep]))
