"""Issue 8, finding 4: the admin's Market change form edited kind, liquidity, slug, close time and each
outcome on a live, traded market, by saving the model form past the services. Raising b from 10 to
100,000 left the escrow below the worst payout. Now what prices and money depend on is read-only once a
market has opened, and a close time changes through market_reschedule, audited."""

from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from accounts.services import ledger_reconcile
from markets.models import Market, MarketEvent, Outcome
from markets.services import markets_reconcile, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """The fields a browser would submit from the admin's change form (form#market_form)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._inside = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self._inside = attributes.get("id") == "market_form"
        if not self._inside:
            return
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "checkbox", "radio", "file"):
            self.data[name] = attributes.get("value") or ""
        elif tag == "input" and name and attributes.get("type") in ("checkbox", "radio") and "checked" in attributes:
            self.data[name] = attributes.get("value") or "on"
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attributes:
            self.data[self._select] = attributes.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._inside = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data.removeprefix("\n")


def change_form(client, market):
    url = f"/admin/markets/market/{market.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    parser = FormFields()
    parser.feed(page.content.decode())
    return url, parser.data


@pytest.fixture
def traded_market(make_user, make_market):
    market = make_market(
        slug="small-b",
        question="Will b stay small?",
        kind=Market.Kind.BINARY,
        liquidity=Decimal("10"),
        closes_at=timezone.now() + timedelta(days=5),
    )
    for code in ["YES", "YES", "NO", "YES"]:
        trade_execute(user=make_user(), market=market, request=trade_request(code, "buy", amount="4"))
    return market


@pytest.fixture
def staff(client, make_user):
    user = make_user("root", is_staff=True)
    client.force_login(user)
    return user


def test_posting_a_new_liquidity_leaves_b_and_the_books_unchanged(client, staff, traded_market, make_user):
    url, data = change_form(client, traded_market)
    assert not {"liquidity", "kind", "slug"} & set(data)
    outcomes_before = list(Outcome.objects.filter(market=traded_market).values_list("pk", "code", "index", "label"))
    data.update(
        liquidity="100000",
        kind="multiple",
        slug="renamed",
        question="Will b stay small? (edited)",
        **{"outcomes-0-code": "MAYBE", "outcomes-0-index": "7", "outcomes-0-label": "Maybe"},
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    traded_market.refresh_from_db()
    assert traded_market.liquidity == Decimal("10")
    assert traded_market.kind == Market.Kind.BINARY
    assert traded_market.slug == "small-b"
    assert traded_market.question == "Will b stay small? (edited)"
    assert list(Outcome.objects.filter(market=traded_market).values_list("pk", "code", "index", "label")) == (
        outcomes_before
    )
    trade_execute(user=make_user(), market=traded_market, request=trade_request("YES", "buy", amount="50"))
    assert ledger_reconcile() == []
    assert markets_reconcile() == []


def test_a_new_close_time_goes_through_the_lifecycle_service_and_is_audited(client, staff, traded_market):
    url, data = change_form(client, traded_market)
    later = (timezone.now() + timedelta(days=20)).replace(microsecond=0, second=0)
    data.update({"closes_at_0": later.strftime("%Y-%m-%d"), "closes_at_1": later.strftime("%H:%M:%S")})
    assert client.post(url, data).status_code == 302
    traded_market.refresh_from_db()
    assert traded_market.closes_at == later
    event = MarketEvent.objects.get(market=traded_market, kind=MarketEvent.Kind.CLOSE_MOVED)
    assert event.actor == staff
    assert event.data["to"] == later.isoformat()


def test_a_close_time_in_the_past_is_a_form_error(client, staff, traded_market):
    url, data = change_form(client, traded_market)
    before = traded_market.closes_at
    past = timezone.now() - timedelta(days=1)
    data.update({"closes_at_0": past.strftime("%Y-%m-%d"), "closes_at_1": past.strftime("%H:%M:%S")})
    response = client.post(url, data)
    assert response.status_code == 200
    assert "The close time must be in the future." in response.content.decode()
    traded_market.refresh_from_db()
    assert traded_market.closes_at == before


def test_a_closed_market_keeps_its_close_time(client, staff, traded_market):
    Market.objects.filter(pk=traded_market.pk).update(status=Market.Status.CLOSED)
    _url, data = change_form(client, traded_market)
    assert "closes_at_0" not in data
