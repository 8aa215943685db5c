"""How a resolved or annulled market turned out, for its card and its page: the result and what each share
paid, shown instead of the last price (which says nothing once the market has settled)."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markets.models import Market, Outcome, Resolution

SETTLED_STATUSES = (Market.Status.RESOLVED, Market.Status.ANNULLED)


@dataclass(frozen=True)
class OutcomePayout:
    outcome: Outcome
    # Credits one share of the outcome paid.
    per_share: Decimal


@dataclass(frozen=True)
class MarketResult:
    # "Resolved: Yes", "Resolved: split", "Annulled".
    headline: str
    # What the result meant for traders, in a sentence.
    payout_line: str
    # Per outcome, in outcome order; empty when annulled.
    payouts: list[OutcomePayout]
    annulled: bool
    winner: Outcome | None

    def per_share(self, code: str) -> Decimal | None:
        return next((row.per_share for row in self.payouts if row.outcome.code == code), None)


def _credits(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return f"{text} credit" if value == 1 else f"{text} credits"


def market_result_of(*, resolution: Resolution, outcomes: Sequence[Outcome]) -> MarketResult:
    """The result of a settled resolution, with the market's outcomes in index order."""
    if resolution.kind == Resolution.Kind.ANNULLED:
        return MarketResult(
            headline="Annulled",
            payout_line="Every trader got back what they put in, net of what they took out.",
            payouts=[],
            annulled=True,
            winner=None,
        )
    values = [Decimal(str(value)) for value in resolution.payouts or []]
    payouts = [OutcomePayout(outcome=o, per_share=v) for o, v in zip(outcomes, values, strict=False)]
    if resolution.kind == Resolution.Kind.OUTCOME:
        winner = next((o for o in outcomes if o.pk == resolution.outcome_id), None)
        label = winner.label if winner else "?"
        return MarketResult(
            headline=f"Resolved: {label}",
            payout_line=f"Each {label} share paid 1 credit; every other share paid nothing.",
            payouts=payouts,
            annulled=False,
            winner=winner,
        )
    line = ", ".join(f"{row.outcome.label} {_credits(row.per_share)}" for row in payouts)
    return MarketResult(
        headline="Resolved: split",
        payout_line=f"Each share paid: {line}.",
        payouts=payouts,
        annulled=False,
        winner=None,
    )


def market_results(*, markets: Sequence[Market], outcomes: dict[int, list[Outcome]]) -> dict[int, MarketResult]:
    """The result of every settled market among `markets` (one query), by market id; `outcomes` by market id."""
    settled = [market.pk for market in markets if market.status in SETTLED_STATUSES]
    if not settled:
        return {}
    resolutions = Resolution.objects.filter(
        market_id__in=settled, is_current=True, state=Resolution.State.SETTLED
    ).order_by("market_id")
    return {
        resolution.market_id: market_result_of(resolution=resolution, outcomes=outcomes.get(resolution.market_id, []))
        for resolution in resolutions
    }
