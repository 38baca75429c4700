"""The ``-p NAME VALUE`` overrides the ``ecgrepro`` commands take: typed text to a value.

The values are read here and checked by :func:`ecgrepro.parameters.validate`.
"""

from __future__ import annotations

import re

import yaml

from ecgrepro.parameters import PARAMETERS

#: A number in scientific notation that YAML 1.1 reads as a string (``1e-4``, ``2E3``, ``1.5e4``).
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def parse_value(text: str):
    """A ``-p`` value as YAML, and scientific notation as a float.

    ``5`` is an int, ``0.5`` and ``1e-4`` floats (YAML 1.1, which :func:`yaml.safe_load`
    follows, reads ``1e-4`` as a string), ``true``/``false`` bools, ``[4, 6]`` a list,
    ``cpu`` a string; an empty value is the text itself.

    Parameters
    ----------
    text : str

    Returns
    -------
    object
    """
    value = yaml.safe_load(text)
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return text if value is None else value


def parse_parameter(name: str, text: str):
    """A ``-p NAME VALUE`` value: the text itself for a string parameter, else :func:`parse_value`.

    A string parameter keeps what was typed (``-p amp off`` is ``"off"``, not YAML's False;
    ``-p lstm_lead II``, ``-p data_root 2024``); the others are read by :func:`parse_value`
    and checked by :func:`ecgrepro.parameters.validate`.

    Parameters
    ----------
    name : str
    text : str

    Returns
    -------
    object
    """
    spec = PARAMETERS.get(name)
    return text if spec is not None and spec.kind == "str" else parse_value(text)
