"""Skip's `defaultParamEncoder`: a resource's params as the query string of a polled URL.

An object becomes `?` and its fields form-encoded the way JavaScript's `URLSearchParams` does
(strings as they are, numbers and booleans as JavaScript prints them, anything else as JSON);
any other value becomes `?params=<its JSON>`. Like Skip, an array counts as an object (its
fields are its indices). Unlike Skip, the JSON of a non-object is percent-encoded, so a string
holding `&` or `#` survives; ordinary values give the same bytes on the wire as Skip's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from broker.json_bytes import dumps
from broker.types import Json


def default_param_encoder(params: Json) -> str:
    fields: Iterable[tuple[object, Json]]
    if isinstance(params, dict):
        fields = params.items()
    elif isinstance(params, list):
        fields = ((str(index), value) for index, value in enumerate(params))
    else:
        return "?params=" + quote(dumps(params).decode(), safe="")
    return "?" + "&".join(f"{_form(str(name))}={_form(_js_string(v))}" for name, v in fields)


def _js_string(value: Json) -> str:
    """`value.toString()` for a string, number or boolean; JSON for the rest (Skip's rule)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        # JavaScript has one number type: 2.0 prints as "2".
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return dumps(value).decode()


def _form(text: str) -> str:
    # application/x-www-form-urlencoded as URLSearchParams writes it: space as "+", and only
    # letters, digits and "*-._" left alone (Python would also keep "~", and encode "*").
    return quote_plus(text, safe="*").replace("~", "%7E")
