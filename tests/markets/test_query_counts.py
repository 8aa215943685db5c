"""Exact query counts where a docstring promises one: a change that adds a query fails here, and either the
code or the docstring has to say so."""

from django.template import Context, Template

from markets.selectors.listing import market_cards
from markets.selectors.market_page import market_page_get
from markets.selectors.markets import Drafts
from markets.selectors.portfolio import _cost_basis
from markets.services import trade_execute
from tests.factories import trade_request


def test_the_nav_balance_is_one_query_and_none_for_a_visitor(make_user, django_assert_num_queries):
    template = Template("{% load wallet %}{% wallet_balance user as balance %}{{ balance }}")
    user = make_user()
    with django_assert_num_queries(1):
        assert template.render(Context({"user": user})) == "1000.000000"
    with django_assert_num_queries(0):
        assert template.render(Context({"user": None})) == "None"


def test_the_live_fragment_reads_its_market_in_one_query(make_market, django_assert_num_queries):
    market = make_market("rutte")
    with django_assert_num_queries(1):
        assert market_page_get(slug="rutte", drafts=Drafts.HIDDEN, with_outcomes=False) == market


def test_a_page_of_market_cards_takes_five_queries_whatever_its_size(make_market, django_assert_num_queries):
    one = [make_market()]
    many = [make_market(outcomes=3) for _ in range(5)]
    for markets in (one, one + many):
        with django_assert_num_queries(5):
            assert len(market_cards(markets)) == len(markets)


def test_the_cost_basis_replays_every_trade_in_one_query(make_user, make_market, django_assert_num_queries):
    user = make_user()
    for market in (make_market(), make_market()):
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="10"))
        trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="2"))
    with django_assert_num_queries(1):
        assert len(_cost_basis(user)) == 2
