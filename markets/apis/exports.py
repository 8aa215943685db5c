"""Bulk downloads: one market's trades or price history (CSV or JSON Lines, streamed), the daily datasets of
resolved markets, and "download my data" (a zip of the signed-in user's profile, trades, positions, payouts).

The per-market export streams rows from a server-side cursor (markets.selectors.exports) into the response
as they arrive: a million-trade market exports in flat memory (bench/export.py). Every export endpoint has a
throttle of its own (API_RATE_EXPORT), on top of the read throttles, since one request costs a full scan.
"""

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import HasKeyScope
from accounts.selectors import user_balance
from config.core.api import AnonReadThrottle, ExportThrottle, UserReadThrottle
from markets.apis.common import public_market_or_404
from markets.selectors.exports import (
    iso,
    market_price_rows,
    market_trade_rows,
    outcome_codes,
    user_comment_rows,
    user_payout_rows,
    user_position_rows,
    user_trade_rows,
)
from markets.services.datasets import dataset_get, datasets_list

# Rows per piece of a streamed response: big enough that the per-piece overhead vanishes, small enough that a
# piece is a few hundred kilobytes.
ROWS_PER_PIECE = 1000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


class JsonOnlyNegotiation(BaseContentNegotiation):
    """`format` is this API's own parameter (csv or jsonl), not DRF's renderer override: the data is streamed
    by the view, and errors are JSON whatever was asked."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _csv_pieces(header: list[str], rows: Iterable[Iterable[object]]) -> Iterator[bytes]:
    """CSV text in pieces of ROWS_PER_PIECE rows, encoded, from one writer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for number, row in enumerate(rows, start=1):
        writer.writerow(row)
        if number % ROWS_PER_PIECE == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _jsonl_pieces(objects: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """JSON Lines in pieces of ROWS_PER_PIECE objects, encoded."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    batch: list[str] = []
    for item in objects:
        batch.append(encode(item))
        if len(batch) == ROWS_PER_PIECE:
            yield ("\n".join(batch) + "\n").encode()
            batch = []
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def trade_pieces(*, market_id: int, fmt: str) -> Iterator[bytes]:
    codes = outcome_codes(market_id=market_id)
    trades = market_trade_rows(market_id=market_id)
    if fmt == "csv":
        header = ["id", "time", "outcome", "side", "shares", "amount", "trader", *(f"p_after_{c}" for c in codes)]
        # Probabilities as repr(float): the shortest text that reads back as the same float.
        rows = (
            [t["id"], t["time"], t["outcome"], t["side"], t["shares"], t["amount"], t["trader"]]
            + [repr(p) for p in t["probabilities_after"]]
            for t in trades
        )
        return _csv_pieces(header, rows)
    return _jsonl_pieces(
        {**trade, "probabilities_after": dict(zip(codes, trade["probabilities_after"], strict=False))}
        for trade in trades
    )


def price_pieces(*, market_id: int, fmt: str) -> Iterator[bytes]:
    codes = outcome_codes(market_id=market_id)
    points = market_price_rows(market_id=market_id)
    if fmt == "csv":
        header = ["time", "trade_id", *(f"p_{code}" for code in codes)]
        rows = (
            [point["time"], point["trade_id"] or "", *(repr(value) for value in point["probabilities"])]
            for point in points
        )
        return _csv_pieces(header, rows)
    return _jsonl_pieces(
        {**point, "probabilities": dict(zip(codes, point["probabilities"], strict=False))} for point in points
    )


class MarketExportApi(APIView):
    required_scope = Scope.READ
    content_negotiation_class = JsonOnlyNegotiation
    throttle_classes = [AnonReadThrottle, UserReadThrottle, ExportThrottle]

    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=["csv", "jsonl"], default="csv", help_text="csv or jsonl.")
        table = serializers.ChoiceField(
            choices=["trades", "prices"],
            default="trades",
            help_text="trades: every trade, oldest first; prices: every price point (the opening, then one a trade).",
        )

    @extend_schema(
        operation_id="markets_export",
        summary="Every trade or price point of a market, as CSV or JSON Lines (streamed)",
        description=(
            "Trades: id, time, outcome, side, shares, amount, trader (a pseudonym, stable within the market) and "
            "the probabilities after the trade; summing shares by outcome (sells negative) gives the market's q. "
            "Prices: time, the trade that set them (empty for the opening) and each outcome's probability. "
            "Probabilities are written in full precision (they round-trip exactly)."
        ),
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH), InputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV, a header row first."),
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="One JSON object a line."),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        market = public_market_or_404(slug)
        fmt, table = query.validated_data["format"], query.validated_data["table"]
        pieces = (trade_pieces if table == "trades" else price_pieces)(market_id=market.pk, fmt=fmt)
        response = StreamingHttpResponse(pieces, content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{market.slug}-{table}.{fmt}"'
        return response


class DatasetListApi(APIView):
    required_scope = Scope.READ

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        day = serializers.DateField(help_text="The day (UTC) it was built.")
        size = serializers.IntegerField(help_text="Bytes.")
        created_at = serializers.DateTimeField()
        url = serializers.URLField(help_text="Where to download it (a zip of CSV files).")

    @extend_schema(
        operation_id="datasets_list",
        summary="Daily datasets of every resolved market (questions, resolutions, price history, trades)",
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        rows = [
            {
                "name": dataset.name,
                "day": dataset.day,
                "size": dataset.size,
                "created_at": dataset.created_at,
                "url": request.build_absolute_uri(reverse("api-dataset-download", args=[dataset.name])),
            }
            for dataset in datasets_list()
        ]
        return Response(self.OutputSerializer(rows, many=True).data)


class DatasetDownloadApi(APIView):
    required_scope = Scope.READ
    content_negotiation_class = JsonOnlyNegotiation
    throttle_classes = [AnonReadThrottle, UserReadThrottle, ExportThrottle]

    @extend_schema(
        operation_id="datasets_download",
        summary="One dataset: a zip of markets.csv, outcomes.csv, trades.csv, prices.csv and README.txt",
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH)],
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, name: str) -> FileResponse:
        dataset = dataset_get(name=name)
        if dataset is None:
            raise NotFound(f"No dataset {name!r}.")
        return FileResponse(dataset.path.open("rb"), as_attachment=True, filename=dataset.name)


def _write_csv(archive: zipfile.ZipFile, name: str, header: list[str], rows: Iterable[Iterable[object]]) -> None:
    with archive.open(name, "w") as entry, io.TextIOWrapper(entry, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


class MeExportApi(APIView):
    """GET /api/v1/me/export/: everything the account holds, as a zip."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ
    content_negotiation_class = JsonOnlyNegotiation
    throttle_classes = [UserReadThrottle, ExportThrottle]

    @extend_schema(
        operation_id="me_export",
        summary="Download my data: profile, trades, positions, payouts and comments as a zip of CSV and JSON files",
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request) -> FileResponse:
        user: User = request.user  # type: ignore[assignment]
        # Spooled to disk past a few megabytes: a long trading history never sits whole in memory.
        spool = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115 - FileResponse closes it
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            profile = {
                "username": user.username,
                "email": user.email,
                "date_joined": iso(user.date_joined),
                "balance": str(user_balance(user=user)),
                "api_keys": [
                    {
                        "name": key.name,
                        "prefix": key.prefix,
                        "scopes": key.scopes,
                        "created_at": iso(key.created_at),
                        "expires_at": iso(key.expires_at),
                        "last_used_at": iso(key.last_used_at),
                        "revoked_at": iso(key.revoked_at),
                    }
                    for key in user.api_keys.order_by("created_at")
                ],
            }
            archive.writestr("profile.json", json.dumps(profile, indent=2))
            _write_csv(
                archive,
                "trades.csv",
                ["id", "time", "market", "outcome", "side", "shares", "amount"],
                user_trade_rows(user_id=user.pk),
            )
            _write_csv(
                archive,
                "positions.csv",
                ["market", "outcome", "shares", "net_cost", "market_status"],
                user_position_rows(user_id=user.pk),
            )
            _write_csv(
                archive,
                "payouts.csv",
                ["market", "resolution_id", "resolution_state", "amount", "time"],
                user_payout_rows(user_id=user.pk),
            )
            _write_csv(
                archive,
                "comments.csv",
                ["id", "time", "market", "parent", "body", "edited_at", "deleted_at", "hidden_at"],
                user_comment_rows(user_id=user.pk),
            )
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=f"forecastle-{user.username}.zip")
