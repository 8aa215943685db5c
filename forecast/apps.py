from django.apps import AppConfig


class ForecastConfig(AppConfig):
    name = "forecast"
    verbose_name = "Scoring and leaderboards"

    def ready(self) -> None:
        from forecast.tasks import market_score_enqueue
        from markets.hooks import on_market_settled

        # Every committed settlement is scored: markets announces it, forecast listens.
        on_market_settled(market_score_enqueue)
