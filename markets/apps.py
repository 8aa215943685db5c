from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets and trading"

    def ready(self) -> None:
        from config.core.metrics import scrape_collector_register
        from markets.hooks import on_market_settled
        from markets.metrics import SettlementAndReconciliationState
        from markets.services import market_change_callbacks
        from markets.services.announce import market_change_announce, market_changes_announce
        from markets.services.changes import market_change_batches
        from markets.services.fills import fill_callbacks
        from markets.services.standing import standing_fills_rearm
        from markets.tasks import market_resolved_notify_enqueue

        # /metrics reports the settlement backlog and the last reconciliation, read when it is scraped.
        scrape_collector_register(SettlementAndReconciliationState())

        # After each change commits, keep cached prices fresh (rebuild the market's snapshot) and publish the change's
        # events to the live stream (price, trade, status): after trades, both in one Redis round trip.
        if market_change_announce not in market_change_callbacks:
            market_change_callbacks.append(market_change_announce)
        # Many markets changed together (proposals finalized at once): their snapshots rebuilt in a few queries.
        market_change_batches[market_change_announce] = market_changes_announce

        # Every snapshot carries the detail API's body, rendered once when it is stored, whichever process
        # stores it (the web tier, a Celery task, a management command): a cached detail read sends those bytes.
        # The API's URL module registers that renderer; a process that serves no request loads it here.
        import markets.api_urls  # noqa: F401

        # Standing forecasts re-arm after their orders fill, under the market's lock (markets.services.fills).
        if standing_fills_rearm not in fill_callbacks:
            fill_callbacks.append(standing_fills_rearm)

        # Every committed settlement is told to the market's traders and followers.
        on_market_settled(market_resolved_notify_enqueue)
