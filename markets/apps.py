from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets and trading"

    def ready(self) -> None:
        from markets.services import market_change_callbacks
        from markets.services.price_cache import prices_refresh

        # Keep cached prices fresh: rebuild the market's snapshot after each change commits.
        if prices_refresh not in market_change_callbacks:
            market_change_callbacks.append(prices_refresh)
