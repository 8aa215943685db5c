"""Exports through the API: a market's trades and prices (CSV, JSON Lines, streamed), the daily datasets of
resolved markets, and "download my data"."""

import csv
import io
import json
import zipfile
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import Scope
from accounts.services import api_key_create
from markets.models import Market, Outcome, Trade
from markets.services import market_resolve
from markets.services.comments import comment_create, comment_delete, comment_hide
from markets.services.datasets import dataset_build
from markets.services.settlement import market_settle

pytestmark = pytest.mark.django_db

TRADES = [
    ("ana", "RUTTE", "buy", {"amount": "40"}),
    ("bob", "KALLAS", "buy", {"shares": "25"}),
    ("ana", "RUTTE", "sell", {"shares": "7.5"}),
    ("cem", "OTHER", "buy", {"probability": "0.3"}),
    ("bob", "KALLAS", "sell", {"amount": "3"}),
    ("ana", "IOHANNIS", "buy", {"amount": "12.34"}),
]


@pytest.fixture
def traded(make_user, make_market):
    market = make_market("nato", kind=Market.Kind.MULTIPLE)
    users = {name: make_user(name) for name in ("ana", "bob", "cem")}
    for name, outcome, side, fields in TRADES:
        client = APIClient()
        client.force_login(users[name])
        response = client.post(
            "/api/v1/markets/nato/trades/", {"outcome": outcome, "side": side, **fields}, format="json"
        )
        assert response.status_code == 201, response.content
    return market, users


def content(response: Any) -> bytes:
    """The whole body of a streamed (or file) response."""
    return b"".join(response.streaming_content)


def streamed(response) -> str:
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response.streaming, "an export is streamed, not built in memory"
    return b"".join(response.streaming_content).decode()


def final_q() -> dict[str, Decimal]:
    return dict(Outcome.objects.filter(market__slug="nato").values_list("code", "shares_outstanding"))


def test_the_csv_trades_rebuild_the_markets_final_q(traded):
    body = streamed(APIClient().get("/api/v1/markets/nato/export/", {"format": "csv"}))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == len(TRADES)
    q: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        q[row["outcome"]] += Decimal(row["shares"]) * (1 if row["side"] == "buy" else -1)
    assert {code: q[code] for code in final_q()} == final_q()
    assert all(q_i > 0 for code, q_i in final_q().items() if code != "RINKEVICS")
    # The probabilities after the last trade round-trip to the bit.
    last = Trade.objects.filter(market__slug="nato").latest("created_at", "id")
    codes = list(Outcome.objects.filter(market__slug="nato").order_by("index").values_list("code", flat=True))
    assert [float(rows[-1][f"p_after_{code}"]) for code in codes] == last.probabilities_after
    # Traders are pseudonyms: stable within the market, never the username.
    assert len({row["trader"] for row in rows}) == 3
    assert not {"ana", "bob", "cem"} & {row["trader"] for row in rows}
    assert rows[0]["trader"] == rows[2]["trader"]  # ana's buy and sell


def test_the_jsonl_trades_and_prices_agree_with_the_database(traded):
    client = APIClient()
    response = client.get("/api/v1/markets/nato/export/", {"format": "jsonl", "table": "trades"})
    assert response["Content-Type"] == "application/x-ndjson"
    trades = [json.loads(line) for line in streamed(response).splitlines()]
    q: dict[str, Decimal] = defaultdict(Decimal)
    for trade in trades:
        q[trade["outcome"]] += Decimal(trade["shares"]) * (1 if trade["side"] == "buy" else -1)
    assert {code: q[code] for code in final_q()} == final_q()
    prices = [
        json.loads(line)
        for line in streamed(
            client.get("/api/v1/markets/nato/export/", {"format": "jsonl", "table": "prices"})
        ).splitlines()
    ]
    assert len(prices) == len(TRADES) + 1  # the opening, then one a trade
    assert prices[0]["trade_id"] is None
    current = dict(Outcome.objects.filter(market__slug="nato").values_list("code", "probability"))
    assert prices[-1]["probabilities"] == current


def test_the_csv_prices_have_a_column_per_outcome(traded):
    body = streamed(APIClient().get("/api/v1/markets/nato/export/", {"format": "csv", "table": "prices"}))
    header = body.splitlines()[0].split(",")
    assert header == ["time", "trade_id", "p_RUTTE", "p_KALLAS", "p_RINKEVICS", "p_IOHANNIS", "p_OTHER"]


@pytest.mark.parametrize(("params", "field"), [({"format": "xlsx"}, "format"), ({"table": "orders"}, "table")])
def test_bad_export_parameters_are_400_naming_the_field(traded, params, field):
    response = APIClient().get("/api/v1/markets/nato/export/", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_draft_or_unknown_market_has_no_export(make_market):
    make_market("hidden", open_now=False)
    for slug in ("hidden", "nowhere"):
        response = APIClient().get(f"/api/v1/markets/{slug}/export/", {"format": "csv"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_exports_are_rate_limited(traded, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "export": "2/hour"},
    }
    client = APIClient()
    for _ in range(2):
        streamed(client.get("/api/v1/markets/nato/export/", {"format": "csv"}))
    refused = client.get("/api/v1/markets/nato/export/", {"format": "csv"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0


def test_the_daily_dataset_holds_resolved_markets_only(traded, make_user, make_market, tmp_path, settings):
    settings.FORECASTLE_DATASETS_DIR = str(tmp_path)
    market, _users = traded
    make_market("unresolved")
    staff = make_user("judge", is_staff=True)
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="RUTTE", reason="Appointed.")
    market_settle(market_id=market.pk)
    dataset = dataset_build()
    client = APIClient()
    listed = client.get("/api/v1/datasets/").json()
    assert [row["name"] for row in listed] == [dataset.name]
    download = client.get(listed[0]["url"].removeprefix("http://testserver"))
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(content(download)))
    assert set(archive.namelist()) == {"README.txt", "markets.csv", "outcomes.csv", "trades.csv", "prices.csv"}
    markets = list(csv.DictReader(io.TextIOWrapper(archive.open("markets.csv"), encoding="utf-8")))
    assert [(row["market"], row["resolution_outcome"]) for row in markets] == [("nato", "RUTTE")]
    assert json.loads(markets[0]["payouts"])["RUTTE"] == "1"
    trades = list(csv.DictReader(io.TextIOWrapper(archive.open("trades.csv"), encoding="utf-8")))
    assert len(trades) == len(TRADES)
    assert not {"ana", "bob", "cem"} & {row["trader"] for row in trades}
    prices = list(csv.DictReader(io.TextIOWrapper(archive.open("prices.csv"), encoding="utf-8")))
    assert len(prices) == len(TRADES) + 1


def test_a_dataset_name_is_never_a_path(tmp_path, settings):
    settings.FORECASTLE_DATASETS_DIR = str(tmp_path / "datasets")
    (tmp_path / "secret.zip").write_bytes(b"secret")
    for name in ("..%2Fsecret.zip", "secret.zip", "forecastle-resolved-2026-01-01.zip"):
        response = APIClient().get(f"/api/v1/datasets/{name}/")
        assert response.status_code == 404, name


def test_the_dataset_is_built_daily_by_beat():
    schedules = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "markets.tasks.dataset_build" in schedules


def test_download_my_data_holds_only_my_own(traded):
    _market, users = traded
    _key, raw_key = api_key_create(user=users["ana"], name="mine", scopes=[Scope.READ])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    response = client.get("/api/v1/me/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(content(response)))
    assert set(archive.namelist()) == {"profile.json", "trades.csv", "positions.csv", "payouts.csv", "comments.csv"}
    profile = json.loads(archive.read("profile.json"))
    assert profile["username"] == "ana"
    assert [key["name"] for key in profile["api_keys"]] == ["mine"]
    trades = list(csv.DictReader(io.TextIOWrapper(archive.open("trades.csv"), encoding="utf-8")))
    assert len(trades) == sum(1 for name, *_ in TRADES if name == "ana")
    assert set(Trade.objects.filter(pk__in=[row["id"] for row in trades]).values_list("user__username", flat=True)) == {
        "ana"
    }
    positions = list(csv.DictReader(io.TextIOWrapper(archive.open("positions.csv"), encoding="utf-8")))
    assert {row["outcome"] for row in positions} == {"RUTTE", "IOHANNIS"}


def test_download_my_data_holds_my_comments_deleted_and_hidden_ones_too(traded, make_user):
    market, users = traded
    ana, bob = users["ana"], users["bob"]
    first = comment_create(market=market, author=ana, body="Rutte has the votes, *surely*.")
    reply = comment_create(market=market, author=ana, body="@bob, see above.", parent_id=first.pk)
    gone = comment_create(market=market, author=ana, body="Withdrawn.")
    comment_delete(comment=gone, user=ana)
    comment_hide(comment=reply, staff=make_user("moderator", is_staff=True))
    comment_create(market=market, author=bob, body="Not ana's.")
    client = APIClient()
    client.force_login(ana)
    archive = zipfile.ZipFile(io.BytesIO(content(client.get("/api/v1/me/export/"))))
    rows = list(csv.DictReader(io.TextIOWrapper(archive.open("comments.csv"), encoding="utf-8")))
    assert [row["id"] for row in rows] == [str(first.pk), str(reply.pk), str(gone.pk)]
    assert rows[0]["body"] == "Rutte has the votes, *surely*."
    assert (rows[0]["market"], rows[0]["parent"], rows[0]["hidden_at"]) == (market.slug, "", "")
    assert rows[1]["parent"] == str(first.pk)
    assert rows[1]["hidden_at"]
    assert rows[2]["deleted_at"]


def test_download_my_data_needs_an_account():
    response = APIClient().get("/api/v1/me/export/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_account_page_offers_download_my_data(make_user, client):
    user = make_user()
    client.force_login(user)
    page = client.get("/accounts/api-keys/").content.decode()
    assert "/api/v1/me/export/" in page
    response = client.get("/api/v1/me/export/")
    assert response.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(content(response))).namelist()
