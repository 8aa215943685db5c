from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets and trading"

    def ready(self) -> None:
        from config.core.metrics import scrape_collector_register
        from markets.hooks import on_market_settled
        from markets.metrics import SettlementAndReconciliationState
        from markets.services import market_change_callbacks
        from markets.services.changes import market_change_batches
        from markets.services.fills import fill_callbacks
        from markets.services.price_cache import prices_refresh, prices_refresh_many
        from markets.services.standing import standing_fills_rearm
        from markets.services.stream import stream_publish
        from markets.tasks import market_resolved_notify_enqueue

        # /metrics reports the settlement backlog and the last reconciliation, read when it is scraped.
        scrape_collector_register(SettlementAndReconciliationState())

        # Keep cached prices fresh: rebuild the market's snapshot after each change commits.
        if prices_refresh not in market_change_callbacks:
            market_change_callbacks.append(prices_refresh)
        # Many markets changed together (proposals finalized at once): their snapshots rebuilt in a few queries.
        market_change_batches[prices_refresh] = prices_refresh_many
        # Publish each change's events to the live stream (price, trade, status), after it commits.
        if stream_publish not in market_change_callbacks:
            market_change_callbacks.append(stream_publish)

        # Every snapshot carries the detail API's body, rendered once when it is stored, whichever process
        # stores it (the web tier, a Celery task, a management command): a cached detail read sends those bytes.
        # The API's URL module registers that renderer; a process that serves no request loads it here.
        import markets.api_urls  # noqa: F401

        # Standing forecasts re-arm after their orders fill, under the market's lock (markets.services.fills).
        if standing_fills_rearm not in fill_callbacks:
            fill_callbacks.append(standing_fills_rearm)

        # Every committed settlement is told to the market's traders and followers.
        on_market_settled(market_resolved_notify_enqueue)
