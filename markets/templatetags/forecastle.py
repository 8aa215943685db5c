"""Number formatting for every page: percent with one decimal, credits with two."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import format_html

from accounts.models import Account, User

register = template.Library()

CENT = Decimal("0.01")
# An en dash stands in for a number that is not known.
MISSING = "\u2013"
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 32


def _to_decimal(value: object) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


@register.filter
def pct(value: object) -> str:
    """A probability (0..1) as a percent with one decimal: 0.5249 -> "52.5%"."""
    number = _to_decimal(value)
    if number is None:
        return MISSING
    return f"{(number * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


@register.filter
def pct_change(value: object) -> str:
    """A change in probability in percentage points, always signed: "+3.1 pts"."""
    number = _to_decimal(value)
    if number is None:
        return MISSING
    points = (number * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if points == 0:
        return "0.0 pts"
    # U+2212 is the typographic minus sign; screen readers read it as "minus".
    return f"+{points} pts" if points > 0 else f"\u2212{abs(points)} pts"


@register.filter
def change_class(value: object) -> str:
    number = _to_decimal(value)
    if number is None or abs(number) < Decimal("0.0005"):
        return "flat"
    return "up" if number > 0 else "down"


@register.filter
def credits(value: object) -> str:
    """Credits with two decimals and thousands separators: 1234.5 -> "1,234.50"."""
    number = _to_decimal(value)
    if number is None:
        return MISSING
    rounded = number.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)
    return f"{rounded:,.2f}".replace("-", "\u2212")


@register.filter
def signed_credits(value: object) -> str:
    number = _to_decimal(value)
    if number is None:
        return MISSING
    text = credits(number)
    return text if text.startswith("\u2212") or number.quantize(CENT) == 0 else f"+{text}"


@register.filter
def shares(value: object) -> str:
    """Share counts with two decimals, like credits (a share pays one credit)."""
    return credits(value)


@lru_cache(maxsize=4096)
def _market_url(slug: str, prefix: str, urlconf: str | None) -> str:
    return reverse("markets:detail", args=[slug], urlconf=urlconf)


@register.filter
def market_url(slug: str) -> str:
    """The market page's URL, as {% url 'markets:detail' slug %} gives it.

    Pages list a market per row (60 rows on a full portfolio); reversing each was a tenth of the page's
    time, so a slug is reversed once per script prefix and URLconf, the two things the result depends on."""
    return _market_url(slug, get_script_prefix(), get_urlconf())


@register.simple_tag
def sparkline(values: list[float], label: str = "") -> str:
    """An inline SVG line of a probability series, drawn on a fixed 0..1 scale so lines compare."""
    if not values:
        return ""
    points = values if len(values) > 1 else [values[0], values[0]]
    step = SPARKLINE_WIDTH / (len(points) - 1)
    coordinates = " ".join(
        f"{index * step:.1f},{(1 - min(max(value, 0.0), 1.0)) * (SPARKLINE_HEIGHT - 4) + 2:.1f}"
        for index, value in enumerate(points)
    )
    trend = "up" if points[-1] > points[0] + 0.0005 else "down" if points[-1] < points[0] - 0.0005 else "flat"
    return format_html(
        '<svg class="sparkline sparkline-{}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">'
        '<polyline fill="none" stroke-width="2" points="{}"/></svg>',
        trend,
        SPARKLINE_WIDTH,
        SPARKLINE_HEIGHT,
        SPARKLINE_WIDTH,
        SPARKLINE_HEIGHT,
        label or "Price trend",
        coordinates,
    )


@register.simple_tag
def wallet_balance(user: User) -> Decimal | None:
    """The signed-in user's balance for the navigation bar (one small query)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Account.objects.filter(user_id=user.pk).values_list("balance", flat=True).first()
