"""The market page follows its live stream: another user's trade moves the page's price through a `price`
event (the 4-second polling stands down while the stream is open), with the page, its stream process
(uvicorn) and the front that serves both at one address all real."""

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from config.core.templatetags.forecastle import pct
from markets.models import Market
from markets.services import trade_execute
from tests.factories import trade_request
from tests.redis_namespace import namespace_delete
from tests.stream_server import front_process, stream_key, stream_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_market_page_price_moves_with_another_users_trade_through_the_stream(
    live_server, page, site, settings, make_user
):
    key = stream_key()
    settings.FORECASTLE_STREAM_KEY = key
    web = urlsplit(live_server.url)
    with (
        stream_server(key=key) as server,
        front_process(
            web=f"{web.hostname}:{web.port}", stream=f"127.0.0.1:{server.port}", proxy_protocol=False
        ) as port,
    ):
        page.goto(f"http://127.0.0.1:{port}/markets/rutte-nato/")
        region = page.locator("#live-region[data-stream-state=open]")
        expect(region).to_be_attached()
        yes = page.locator('#live-region .outcome-prob[data-outcome="YES"]')
        before = yes.inner_text()

        other = make_user("another-forecaster")
        traded = trade_execute(
            user=other, market=Market.objects.get(slug="rutte-nato"), request=trade_request("YES", "buy", amount="80")
        )
        after = pct(traded.probabilities[0])
        assert after != before

        expect(yes).to_have_text(after)
        # The htmx swap replaces the region before the stream marks it again: wait for the mark, never read
        # the attribute in between.
        expect(page.locator("#live-region")).to_have_attribute("data-stream-events", re.compile(r"^[1-9][0-9]*$"))
        expect(page.locator("#live-region[data-stream-state=open]")).to_be_attached()
    namespace_delete(settings.REDIS_URL, key)
