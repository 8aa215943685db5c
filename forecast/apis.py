"""Public score reads: leaderboards, a forecaster's track record, a market's scores. One class per operation."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.money import CREDIT_PLACES, MAX_DIGITS
from accounts.permissions import HasKeyScope
from forecast import selectors
from forecast.models import LeaderboardEntry
from markets.models import Market, Resolution
from markets.selectors.markets import Drafts, market_by_slug

SCORE_HELP = {
    "brier": "Multi-category Brier score averaged over the time the trader held a forecast (0 best, 2 worst).",
    "log_score": "Natural-log score averaged over the covered time (0 best).",
    "baseline": "100·ln(N·p)/ln N against the uniform forecast, averaged over the whole open period.",
    "peer": "100·ln(p / geometric mean of the others' forecasts), averaged over the whole open period.",
    "coverage": "Share of the market's open period during which the trader held a forecast.",
}


def money_field(**kwargs: Any) -> serializers.DecimalField:
    """Credits as a decimal string with six places (accounts.money)."""
    return serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=CREDIT_PLACES, **kwargs)


class CalibrationBucketSerializer(serializers.Serializer):
    bucket = serializers.IntegerField(help_text="0 to 9: forecasts in [bucket/10, (bucket+1)/10).")
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    weight = serializers.FloatField(help_text="Time weight: open periods spent in this bucket, summed over outcomes.")
    count = serializers.IntegerField(help_text="Held forecasts (trade x outcome) that fell in this bucket.")
    mean_forecast = serializers.FloatField(allow_null=True)
    observed = serializers.FloatField(allow_null=True, help_text="Time-weighted frequency with which it happened.")


class LeaderboardApi(APIView):
    permission_classes = [HasKeyScope]

    class InputSerializer(serializers.Serializer):
        metric = serializers.ChoiceField(choices=LeaderboardEntry.Metric.choices, default="profit")
        period = serializers.ChoiceField(choices=LeaderboardEntry.Period.choices, default="all")
        limit = serializers.IntegerField(min_value=1, max_value=selectors.MAX_LEADERBOARD_PAGE, default=50)
        offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)

    class OutputSerializer(serializers.Serializer):
        class LeaderboardEntrySerializer(serializers.Serializer):
            rank = serializers.IntegerField(help_text="Ties share a rank.")
            username = serializers.CharField(source="user.username")
            value = serializers.DecimalField(
                max_digits=20,
                decimal_places=6,
                help_text="Sum of profit (credits), sum of baseline or peer scores, or mean Brier score.",
            )
            markets = serializers.IntegerField(help_text="Scored markets counted.")

        metric = serializers.ChoiceField(choices=LeaderboardEntry.Metric.choices)
        period = serializers.ChoiceField(choices=LeaderboardEntry.Period.choices)
        total = serializers.IntegerField(help_text="Traders on this leaderboard.")
        built_at = serializers.DateTimeField(allow_null=True, help_text="When the leaderboards were last rebuilt.")
        entries = LeaderboardEntrySerializer(many=True)
        calibration = CalibrationBucketSerializer(many=True, help_text="The whole site's calibration curve.")

    @extend_schema(
        operation_id="leaderboard_retrieve",
        summary="A leaderboard: profit, baseline, peer or mean Brier, all time or the last 30 days",
        parameters=[InputSerializer],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.leaderboard_page(**query.validated_data)
        data = {
            "metric": page.metric,
            "period": page.period,
            "total": page.total,
            "built_at": page.built_at,
            "entries": page.entries,
            "calibration": selectors.site_calibration(),
        }
        return Response(self.OutputSerializer(data).data)


class ScoreSerializer(serializers.Serializer):
    payout = money_field(help_text="Credits the settlement paid.")
    net_cost = money_field(help_text="Credits paid for buys minus credits received from sells.")
    profit = money_field(help_text="payout - net_cost.")
    brier = serializers.FloatField(allow_null=True, help_text=SCORE_HELP["brier"])
    log_score = serializers.FloatField(allow_null=True, help_text=SCORE_HELP["log_score"])
    baseline = serializers.FloatField(help_text=SCORE_HELP["baseline"])
    peer = serializers.FloatField(help_text=SCORE_HELP["peer"])
    coverage = serializers.FloatField(help_text=SCORE_HELP["coverage"])
    trades = serializers.IntegerField()


class UserDetailApi(APIView):
    permission_classes = [HasKeyScope]

    class OutputSerializer(serializers.Serializer):
        class UserTrackRecordSerializer(serializers.Serializer):
            markets = serializers.IntegerField(help_text="Scored (resolved, not annulled) markets.")
            profit = money_field()
            mean_brier = serializers.FloatField(allow_null=True)
            mean_log = serializers.FloatField(allow_null=True)
            baseline = serializers.FloatField(help_text="Sum of baseline scores.")
            peer = serializers.FloatField(help_text="Sum of peer scores.")
            mean_coverage = serializers.FloatField(allow_null=True)

        class UserRankSerializer(serializers.Serializer):
            metric = serializers.ChoiceField(choices=LeaderboardEntry.Metric.choices)
            period = serializers.ChoiceField(choices=LeaderboardEntry.Period.choices)
            rank = serializers.IntegerField()
            value = serializers.DecimalField(max_digits=20, decimal_places=6)
            markets = serializers.IntegerField()

        class UserResolvedMarketSerializer(ScoreSerializer):
            market = serializers.SlugField(source="market.slug")
            question = serializers.CharField(source="market.question")
            resolution = serializers.ChoiceField(choices=Resolution.Kind.choices, source="resolution.kind")
            outcome = serializers.CharField(source="resolution.outcome.code", allow_null=True, default=None)
            resolved_at = serializers.DateTimeField()

        username = serializers.CharField()
        date_joined = serializers.DateTimeField()
        track_record = UserTrackRecordSerializer()
        ranks = UserRankSerializer(many=True)
        calibration = CalibrationBucketSerializer(many=True)
        markets = UserResolvedMarketSerializer(many=True, help_text="The 50 most recently resolved markets.")

    @extend_schema(
        operation_id="users_retrieve",
        summary="A forecaster's public track record, ranks, calibration and resolved markets",
        parameters=[OpenApiParameter("username", str, OpenApiParameter.PATH)],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_by_username(username=username)
        ranks = selectors.user_ranks(user=user)
        data = {
            "username": user.username,
            "date_joined": user.date_joined,
            "track_record": selectors.user_track_record(user=user),
            "ranks": [entry for by_period in ranks.values() for entry in by_period.values()],
            "calibration": selectors.user_calibration(user=user),
            "markets": selectors.user_scores(user=user),
        }
        return Response(self.OutputSerializer(data).data)


class MarketScoresApi(APIView):
    permission_classes = [HasKeyScope]

    class OutputSerializer(serializers.Serializer):
        class MarketTraderScoreSerializer(ScoreSerializer):
            username = serializers.CharField()

        market = serializers.SlugField()
        status = serializers.ChoiceField(choices=Market.Status.choices)
        resolution = serializers.ChoiceField(
            choices=Resolution.Kind.choices, allow_null=True, help_text="The current resolution, if any."
        )
        payouts = serializers.ListField(
            child=serializers.CharField(), allow_null=True, help_text="Payout per share by outcome index."
        )
        scores = MarketTraderScoreSerializer(many=True, help_text="Empty until the market is resolved and scored.")

    @extend_schema(
        operation_id="markets_scores_list",
        summary="Every trader's profit and scores in a resolved market",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH)],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        try:
            market = market_by_slug(slug=slug, drafts=Drafts.HIDDEN)
        except Market.DoesNotExist:
            raise NotFound(f"No market {slug!r}.") from None
        resolution = selectors.market_current_resolution(market=market)
        data = {
            "market": market.slug,
            "status": market.status,
            "resolution": resolution.kind if resolution else None,
            "payouts": resolution.payouts if resolution else None,
            "scores": selectors.market_scores(market=market),
        }
        return Response(self.OutputSerializer(data).data)
