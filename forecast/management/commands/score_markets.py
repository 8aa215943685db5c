"""`manage.py score_markets`: scores every settled market whose scores are missing or stale, then rebuilds
the leaderboards, in this process. `make run` runs it after the demo data, so the leaderboard, profiles and
calibration charts are full on the first page load; a second run finds nothing to do."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from forecast import selectors, services


class Command(BaseCommand):
    help = "Scores settled markets whose scores are missing or stale, then rebuilds the leaderboards."

    def handle(self, *args: object, **options: Any) -> None:
        market_ids = selectors.markets_with_stale_scores(settled_before=timezone.now())
        scored = sum(services.market_score(market_id=market_id).scored for market_id in market_ids)
        if market_ids:
            services.leaderboards_rebuild()
            self.stdout.write(f"Scored {len(market_ids)} markets ({scored} scores); leaderboards rebuilt.")
        else:
            self.stdout.write("Every settled market is scored; nothing changed.")
