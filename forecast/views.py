"""Public pages: the leaderboards and a forecaster's profile. Thin: parse the query, call selectors, render."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from forecast import selectors
from forecast.charts import calibration_chart
from forecast.models import LeaderboardEntry
from markets.selectors.comments import user_comments
from markets.selectors.follows import user_follow_counts, user_followers, user_follows
from markets.selectors.net_worth import net_worth_chart, user_net_worth_history
from markets.selectors.standing import user_standing_beliefs

PAGE_SIZE = 50
MAX_PAGE = 10_000


def _choice(value: str | None, choices: list[str], default: str) -> str:
    return value if value in choices else default


def _page_number(value: str | None) -> int:
    # Anything that is not a sensible page number shows the first page rather than an error.
    return int(value) if value and value.isdigit() and 0 < int(value) <= MAX_PAGE else 1


@require_GET
def leaderboard_view(request: HttpRequest) -> HttpResponse:
    metric = _choice(request.GET.get("metric"), LeaderboardEntry.Metric.values, LeaderboardEntry.Metric.PROFIT)
    period = _choice(request.GET.get("period"), LeaderboardEntry.Period.values, LeaderboardEntry.Period.ALL)
    page_number = _page_number(request.GET.get("page"))
    board = selectors.leaderboard_page(
        metric=metric, period=period, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE
    )
    context = {
        "board": board,
        "metrics": LeaderboardEntry.Metric.choices,
        "periods": LeaderboardEntry.Period.choices,
        "metric_label": LeaderboardEntry.Metric(metric).label,
        "page_number": page_number,
        "previous_page": page_number - 1 if page_number > 1 else None,
        "next_page": page_number + 1 if page_number * PAGE_SIZE < board.total else None,
        "chart": calibration_chart(selectors.site_calibration()),
    }
    template = "forecast/_leaderboard_board.html" if request.htmx else "forecast/leaderboard.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@require_GET
def user_profile_view(request: HttpRequest, username: str) -> HttpResponse:
    user = selectors.user_by_username(username=username)
    calibration = selectors.user_calibration(user=user)
    ranks = selectors.user_ranks(user=user)
    context = {
        "profile_user": user,
        "record": selectors.user_track_record(user=user),
        # (metric, label, all-time entry or None, 30-day entry or None) per leaderboard.
        "rank_rows": [
            (metric, label, ranks.get(metric, {}).get("all"), ranks.get(metric, {}).get("30d"))
            for metric, label in LeaderboardEntry.Metric.choices
        ],
        "calibration": calibration,
        "chart": calibration_chart(calibration),
        "scores": selectors.user_scores(user=user),
        "net_worth_chart": net_worth_chart(user_net_worth_history(user=user)),
        "comments": user_comments(user=user),
        "standing_beliefs": user_standing_beliefs(user_id=user.pk),
        "followers": user_followers(user=user),
        "follow_counts": user_follow_counts(user=user),
        "is_self": request.user.is_authenticated and request.user.pk == user.pk,
        "following": request.user.is_authenticated
        and request.user.pk != user.pk
        and user_follows(follower=request.user, followed=user),
    }
    return render(request, "forecast/user_profile.html", context)
