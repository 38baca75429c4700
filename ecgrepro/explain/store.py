"""Explanation results as artifacts: computed once per key, re-read on every rebuild.

An explanation over a record set (SHAP values, exact lead Shapley values,
Grad-CAM maps, QRS delineations) is stored as one ``.npz`` file under
``<build>/artifacts/explain/``, named after what it is and the hash of what
determines it: the model's artifact key (:attr:`ecgrepro.pipeline.TrainedModel.key`),
the explained records (names and the dataset's ``data_key``), the method's
parameters (background size, samples, seed, baseline, layer, ...) and
:data:`EXPLAIN_CODE_VERSION`. A rebuild with the same key reads the file; a
change of any part computes anew. Files are written to a temporary name in the
same folder and moved into place (``os.replace``), as the trained models are
(:func:`ecgrepro.pipeline.get_model`), so an interrupted build never leaves a
half-written result under a valid name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecgrepro.data.signals import lock_for, move_aside, publish

#: Bump when a change to the explanation code changes a stored result.
#: 2: padding ignored, |phi| normalisation of the variants, the 8-lead game.
EXPLAIN_CODE_VERSION = 2

_PAYLOAD = "__key_payload__"


def _jsonable(obj):
    """JSON form of numpy scalars and arrays inside a key payload."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"key payload holds {type(obj).__name__}, which has no stable JSON form")


def key_of(key_payload: dict) -> str:
    """Hash of a key payload with :data:`EXPLAIN_CODE_VERSION` added: 16 hexadecimal digits.

    Raises
    ------
    TypeError
        If the payload holds something without a stable JSON form.
    """
    text = json.dumps(
        {"payload": key_payload, "code": EXPLAIN_CODE_VERSION},
        sort_keys=True,
        default=_jsonable,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(
    folder: Path | str,
    name: str,
    key_payload: dict,
    compute: Callable[[], dict],
    log=None,
) -> dict[str, np.ndarray]:
    """The stored result for this key, or ``compute()``'s, stored atomically.

    Parameters
    ----------
    folder : pathlib.Path or str
        Where results are kept (``pipe.artifacts / "explain"``); created if missing.
    name : str
        What the result is (``shap-published-original-cpsc``, ``gradcam-cases``,
        ...): the file is ``<folder>/<name>-<key>.npz``.
    key_payload : dict
        Everything that determines the result (JSON-serialisable; numpy values
        are converted). Its hash, with :data:`EXPLAIN_CODE_VERSION`, is the key.
    compute : callable
        Called with no argument when no result is stored; returns a dict of
        str -> array-like (numbers or strings; no objects, so the file loads
        without pickle).
    log : callable, optional
        Receives one line saying whether the result was reused or computed.

    Returns
    -------
    dict of str -> numpy.ndarray
        The arrays, loaded in memory.

    Raises
    ------
    TypeError
        If ``compute`` returns something other than a dict, or an array of objects.

    Warns
    -----
    ecgrepro.data.CorruptCacheWarning
        When the stored file cannot be read (truncated, not a zip, a bad
        CRC-32 of a member): it is moved aside and computed anew.

    Notes
    -----
    Checked, computed and stored under an inter-process lock
    (:func:`ecgrepro.data.signals.lock_for`): two processes asking for the
    same result compute it once. Files load with ``allow_pickle=False``.
    """
    folder = Path(folder)
    key = key_of(key_payload)
    path = folder / f"{name}-{key}.npz"
    folder.mkdir(parents=True, exist_ok=True)
    with lock_for(path):
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    out = {k: stored[k] for k in stored.files if k != _PAYLOAD}
                if log:
                    log(f"{name}: reusing {path.name}")
                return out
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                move_aside(path, f"cannot be read ({type(exc).__name__}: {exc})", log)
        return _compute_and_store(folder, name, key, path, key_payload, compute, log)


def _compute_and_store(folder, name, key, path, key_payload, compute, log):
    """``compute()``'s result, stored atomically at ``path`` (see :func:`cached`)."""
    result = compute()
    if not isinstance(result, dict):
        raise TypeError(f"compute must return a dict of arrays, got {type(result).__name__}")
    arrays = {str(k): np.asarray(v) for k, v in result.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"{name}: {k!r} is an array of objects; store numbers or strings")
    payload = json.dumps(key_payload, sort_keys=True, default=_jsonable)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays, **{_PAYLOAD: np.array(payload)})
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if log:
        log(f"{name}: computed and stored {path.name}")
    return arrays


def stored_payload(path: Path | str) -> dict:
    """The key payload a stored result was computed for (to see what a file holds)."""
    with np.load(path, allow_pickle=False) as stored:
        return json.loads(str(stored[_PAYLOAD]))
