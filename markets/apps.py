from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets and trading"

    def ready(self) -> None:
        from markets.cache import prices_refresh
        from markets.services import after_trade_commit

        # Keep cached prices fresh: rebuild the market's snapshot after each trade commits.
        if prices_refresh not in after_trade_commit:
            after_trade_commit.append(prices_refresh)
