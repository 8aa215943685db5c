"""Exact query counts where a forecast selector's docstring promises one."""

import pytest

from forecast import selectors
from forecast.models import LeaderboardEntry

pytestmark = pytest.mark.django_db


def test_a_leaderboard_page_takes_two_queries_whatever_its_size(scored, django_assert_num_queries):
    for limit in (1, 50):
        with django_assert_num_queries(2):
            page = selectors.leaderboard_page(
                metric=LeaderboardEntry.Metric.PROFIT, period=LeaderboardEntry.Period.ALL, limit=limit
            )
        assert len(page.entries) == min(limit, 6)


def test_a_users_ranks_scores_and_a_markets_scores_take_one_query_each(scored, django_assert_num_queries):
    first, _second = scored
    alice = first.traders["alice"]
    with django_assert_num_queries(1):
        assert selectors.user_ranks(user=alice)
    with django_assert_num_queries(1):
        assert len(selectors.user_scores(user=alice)) == 1
    with django_assert_num_queries(1):
        assert len(list(selectors.market_scores(market=first.market))) == 3
