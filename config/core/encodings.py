"""Content codings of bodies rendered beforehand: a cached read's body is compressed once, when it is rendered, and
its gzip bytes are sent to every client whose Accept-Encoding admits gzip (browsers, curl --compressed, httpx and
requests all send it); any other client gets the identity bytes. Nothing is compressed per request.

A gzip representation has its own strong ETag, the identity one with `-gz` inside the quotes (RFC 9110 8.8.3: a
strong validator changes with the content coding), and either tag revalidates the other: both name the same
content (`etag_base`). Every answer of such a read says `Vary: Accept-Encoding`, so a shared cache keeps the two
apart.
"""

import functools
import gzip
import re

GZIP = "gzip"
# Smaller bodies are sent as they are: a response this small fits in one TCP segment with its headers either way,
# so compressing it saves no packet, and costs the client an inflate (docs/benchmarks.md, item 23).
GZIP_MIN_BYTES = 1024
# zlib's default and Django's GZipMiddleware's: within a few percent of 9's size on API JSON, at half its CPU.
GZIP_LEVEL = 6
GZIP_ETAG_SUFFIX = "-gz"

# One element of Accept-Encoding (RFC 9110 12.5.3): a coding, then parameters; only `q` is defined.
_QVALUE = re.compile(r"(0(\.\d{0,3})?|1(\.0{0,3})?)")


def gzipped(body: bytes) -> bytes | None:
    """`body` compressed with gzip (the same bytes for the same body: no timestamp), or None where it does not pay:
    below GZIP_MIN_BYTES, or no smaller."""
    if len(body) < GZIP_MIN_BYTES:
        return None
    compressed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    return compressed if len(compressed) < len(body) else None


def gzip_etag(etag: str) -> str:
    """The ETag of a body's gzip representation, from that of its identity: `"abc"` -> `"abc-gz"`."""
    return etag[:-1] + GZIP_ETAG_SUFFIX + '"'


def etag_base(etag: str) -> str:
    """The identity ETag a (strong) tag of either representation stands for."""
    suffix = GZIP_ETAG_SUFFIX + '"'
    return etag[: -len(suffix)] + '"' if etag.endswith(suffix) else etag


@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a request's Accept-Encoding admits gzip: listed (or `x-gzip`, its alias) with a q-value above 0, or
    unlisted under a `*` above 0. No header, an empty one, `gzip;q=0` or a malformed q-value: no (identity is
    always acceptable, so doubt sends identity). Remembered: clients send a handful of distinct values."""
    if not accept_encoding:
        return False
    listed: float | None = None
    anything: float | None = None
    for element in accept_encoding.split(","):
        coding, *parameters = element.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                if not _QVALUE.fullmatch(value):
                    weight = 0.0
                    break
                weight = float(value)
        if coding in (GZIP, "x-gzip"):
            listed = weight if listed is None else max(listed, weight)
        elif coding == "*":
            anything = weight
    if listed is not None:
        return listed > 0
    return anything is not None and anything > 0
