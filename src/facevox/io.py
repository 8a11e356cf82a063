"""Reading and writing facevox files: atomic, contract-checked, with provenance."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facevox.contract import PROVENANCE_KEY, check_table
from facevox.errors import ExcludedInput, InputError
from facevox.provenance import dumps

if TYPE_CHECKING:  # pandas loads on first use (to_pandas / from_pandas): a stage writing Arrow never pays it
    import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of finished files and folders: what open()/mkdir() would give
#: (mkstemp and mkdtemp make private 0600/0700 ones).
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A killed or failed writer leaves no file at ``path`` (only a ``.tmp-*`` file
    that the next successful run replaces), so Snakemake never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _bytes_array(field: pa.Field, values: list) -> pa.Array:
    """A binary or string Arrow array of ``field`` from byte strings (None: null), from its buffers."""
    ends = np.cumsum([len(b or b"") for b in values], dtype=np.int64)
    if len(ends) and ends[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"table_from_numpy: column {field.name} holds over 2 GiB; write it in batches")
    offsets = np.concatenate([[0], ends]).astype(np.int32)
    valid = None
    if any(b is None for b in values):
        valid = pa.py_buffer(np.packbits([b is not None for b in values], bitorder="little"))
    data = pa.py_buffer(b"".join(b or b"" for b in values))
    return pa.Array.from_buffers(field.type, len(values), [valid, pa.py_buffer(offsets), data])


def table_from_numpy(columns: dict, schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``schema`` from numpy columns {name: 1-D array; binary: a list of bytes}, as
    ``pa.Table.from_pandas`` would make it (a float NaN becomes null), built from the
    arrays' buffers: ``pa.array`` imports pandas (~0.2 s) to look for pandas objects."""
    arrays = []
    for field in schema:
        if pa.types.is_binary(field.type):  # bytes (None: null), as a list: numpy's S dtype drops trailing NULs
            arrays.append(_bytes_array(field, list(columns[field.name])))
            continue
        arr = np.asarray(columns[field.name])
        if pa.types.is_boolean(field.type):
            data = np.packbits(arr.astype(bool), bitorder="little")
            arrays.append(pa.Array.from_buffers(field.type, len(arr), [None, pa.py_buffer(data)]))
            continue
        if pa.types.is_string(field.type):  # str values (None: null), as their UTF-8 bytes
            arrays.append(_bytes_array(field, [None if v is None else str(v).encode() for v in arr.tolist()]))
            continue
        data = np.ascontiguousarray(arr, dtype=field.type.to_pandas_dtype())
        valid = None
        if pa.types.is_floating(field.type):
            nan = np.isnan(data)
            if nan.any():
                valid = pa.py_buffer(np.packbits(~nan, bitorder="little"))
        arrays.append(pa.Array.from_buffers(field.type, len(arr), [valid, pa.py_buffer(data)]))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_table(df: pd.DataFrame | pa.Table, path, schema: pa.Schema, provenance: dict,
                row_group_size: int | None = None) -> None:
    """Write ``df`` (pandas or Arrow) as Parquet with exactly ``schema`` and the provenance
    in its metadata."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    check_table(table, schema, str(path))
    table = table.replace_schema_metadata({PROVENANCE_KEY: dumps(provenance).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


class TableWriter:
    """Write a Parquet table of ``schema`` batch by batch: atomic, with the provenance in its metadata.

    ``with TableWriter(path, schema, provenance) as w: w.write(batch)`` - each batch (an Arrow
    table or numpy columns, as :func:`table_from_numpy`) is checked against the contract and
    appended to a temporary file beside ``path`` as row groups of at most ``row_group_size``
    rows, so memory holds one batch, not the table.  The file appears at ``path`` only when the
    block ends without an exception (:func:`atomic_path`); with no batch written it holds the
    empty table, as :func:`write_table` writes it.  Compression and metadata as write_table.
    """

    def __init__(self, path, schema: pa.Schema, provenance: dict, row_group_size: int | None = None):
        self.path = Path(path)
        self.schema = schema.with_metadata({PROVENANCE_KEY: dumps(provenance).encode()})
        self.row_group_size = row_group_size
        self.n_rows = 0
        self.n_batches = 0
        self._stack: contextlib.ExitStack | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> TableWriter:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path))
            self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
            stack.push(self._close)  # runs first on exit: the footer is written before the rename
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def write(self, batch: pa.Table | dict) -> None:
        """Append ``batch`` (an Arrow table of the schema, or numpy columns {name: 1-D array})."""
        if self._writer is None:
            raise RuntimeError("TableWriter.write outside its with block")
        table = batch if isinstance(batch, pa.Table) else table_from_numpy(batch, self.schema)
        check_table(table, self.schema, str(self.path))
        if table.num_rows:
            self._writer.write_table(table.replace_schema_metadata(self.schema.metadata),
                                     row_group_size=self.row_group_size)
            self.n_rows += table.num_rows
            self.n_batches += 1

    def _close(self, exc_type, exc, tb) -> None:
        writer, self._writer = self._writer, None
        if exc_type is not None:  # the file is dropped: close quietly, the first error is the one to see
            with contextlib.suppress(Exception):
                writer.close()
            return
        if self.n_rows == 0:  # as pq.write_table writes an empty table: one row group of no rows
            writer.write_table(self.schema.empty_table())
        writer.close()

    def __exit__(self, *exc) -> bool:
        stack, self._stack = self._stack, None
        return stack.__exit__(*exc)


def read_table(path, schema: pa.Schema | None = None) -> tuple[pd.DataFrame, dict]:
    """Read a facevox Parquet file; return the frame and its provenance record.

    An *excluded* record (no rows, the reason under ``excluded`` in its provenance:
    facevox.extract.exclusion) raises :class:`ExcludedInput`, so no reader takes it for
    a video without data."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(path, f"not a readable Parquet file ({exc})") from None
    excluded = read_provenance_from(table.schema).get("excluded")
    if excluded:
        raise ExcludedInput(path, excluded)
    if schema is not None:
        check_table(table, schema, str(path))
    return table.to_pandas(), read_provenance_from(table.schema)


def read_provenance(path) -> dict:
    """The provenance record of a Parquet file (its ``facevox`` metadata), without reading the table."""
    return read_provenance_from(pq.read_schema(path))


def read_provenance_from(schema: pa.Schema) -> dict:
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def file_sha256(path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json(obj, path) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path) -> dict:
    """A JSON file as a dict; an InputError naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON file ({exc})") from None
