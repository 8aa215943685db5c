from django.apps import AppConfig


class ForecastConfig(AppConfig):
    name = "forecast"
    verbose_name = "Scoring and leaderboards"
