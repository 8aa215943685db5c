"""Scores, calibration and leaderboards. Every row here is derived: forecast.services rebuilds it from the
trades, positions and the current resolution, so it can be deleted and recomputed at any time."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import MoneyField
from markets.models import Market, Resolution


class MarketScore(models.Model):
    """One trader's result in one resolved market (see forecast/scoring.py for the definitions)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="scores")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="market_scores")
    resolution = models.ForeignKey(Resolution, on_delete=models.CASCADE, related_name="+")
    # When the market resolved: the 30-day leaderboards filter on it.
    resolved_at = models.DateTimeField()
    payout = MoneyField()
    net_cost = MoneyField()
    profit = MoneyField()
    # Null when the trader held no forecast for any positive time (Brier and log average over covered time).
    brier = models.FloatField(null=True)
    log_score = models.FloatField(null=True)
    baseline = models.FloatField()
    peer = models.FloatField()
    coverage = models.FloatField()
    trades = models.PositiveIntegerField()

    class Meta:
        ordering = ["market", "-profit", "user"]
        constraints = [
            models.UniqueConstraint(fields=["market", "user"], name="market_score_unique_per_user"),
            models.CheckConstraint(condition=Q(coverage__gte=0) & Q(coverage__lte=1.000001), name="score_coverage"),
        ]
        indexes = [models.Index(fields=["user", "-resolved_at"]), models.Index(fields=["resolved_at"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.market_id}: profit {self.profit}"


class MarketCalibration(models.Model):
    """Time-weighted calibration of one trader in one market, per probability bucket (only non-empty buckets)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    bucket = models.PositiveSmallIntegerField()
    # Sum of held time / open period; the same sums times the outcome's payout and times the forecast.
    weight = models.FloatField()
    observed = models.FloatField()
    forecast = models.FloatField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "user", "bucket"], name="market_calibration_unique"),
        ]
        indexes = [models.Index(fields=["user", "bucket"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.market_id}, bucket {self.bucket}"


class SiteCalibration(models.Model):
    """The whole site's calibration per bucket, rebuilt with the leaderboards."""

    bucket = models.PositiveSmallIntegerField(unique=True)
    weight = models.FloatField()
    observed = models.FloatField()
    forecast = models.FloatField()
    count = models.PositiveIntegerField()
    built_at = models.DateTimeField()

    class Meta:
        ordering = ["bucket"]

    def __str__(self) -> str:
        return f"bucket {self.bucket}: {self.count}"


class LeaderboardEntry(models.Model):
    """A trader's rank on one leaderboard (metric x period), rebuilt by forecast.services.leaderboards_rebuild."""

    class Metric(models.TextChoices):
        PROFIT = "profit", "Profit"
        BASELINE = "baseline", "Baseline score"
        PEER = "peer", "Peer score"
        BRIER = "brier", "Mean Brier score"

    class Period(models.TextChoices):
        ALL = "all", "All time"
        LAST_30_DAYS = "30d", "Last 30 days"

    metric = models.CharField(max_length=10, choices=Metric.choices)
    period = models.CharField(max_length=3, choices=Period.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveIntegerField()
    # Sum of profit, sum of baseline or peer scores, or mean Brier, to 6 places.
    value = models.DecimalField(max_digits=20, decimal_places=6)
    markets = models.PositiveIntegerField()
    built_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "leaderboard entries"
        ordering = ["metric", "period", "rank", "user"]
        constraints = [
            models.UniqueConstraint(fields=["metric", "period", "user"], name="leaderboard_entry_unique"),
        ]
        indexes = [models.Index(fields=["metric", "period", "rank"])]

    def __str__(self) -> str:
        return f"{self.metric}/{self.period} #{self.rank}: {self.user_id}"
