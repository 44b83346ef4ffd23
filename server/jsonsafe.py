"""JSON that browsers can always parse: NaN and ±Infinity become null instead of bare tokens.

Python's json writes `NaN`/`Infinity`, which JavaScript's JSON.parse rejects, and with
allow_nan=False it raises instead, which inside the worker would lose a finished job. Values
from nodes (UI outputs, error inputs, object_info defaults) pass through here.
"""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

from aiohttp import web


def finite(value: Any) -> Any:
    """A copy of `value` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that never emits NaN/Infinity and stringifies unknown objects."""
    kwargs.setdefault("default", str)
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **kwargs)


json_response = partial(web.json_response, dumps=dumps)
