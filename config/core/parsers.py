"""The API's JSON parser, bounded in depth.

DRF's JSONParser hands the body to json.loads, which recurses once per level: 100,000 nested brackets
raised RecursionError, which nothing caught, and the API answered 500. Bodies are refused with a 400
(ParseError, the API's error shape) when they nest deeper than API_MAX_JSON_DEPTH, counted before
parsing; no request of the API needs more than a few levels.
"""

import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# A JSON string, escapes included: brackets inside strings do not nest.
STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
BRACKET = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON text nests objects and arrays deeper than `limit` (malformed text counts as it goes)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in BRACKET.findall(STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.API_MAX_JSON_DEPTH
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise ParseError(f"JSON parse error - {error}") from error
        if json_depth_exceeds(text, limit):
            raise ParseError(f"JSON nested deeper than {limit} levels.")
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {limit} levels.") from None
