"""Number formatting for every page: percent with one decimal, credits with two; price sparklines.

Registered as the `forecastle` template library in TEMPLATES (config/settings/base.py): the bottom
layer is not an app, and these filters know no app. Tags that read an app's rows or URLs live in that
app (accounts' `wallet`, markets' `market_links`)."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from config.core.markdown import sanitize_html

register = template.Library()

CENT = Decimal("0.01")
# An en dash stands in for a number that is not known.
MISSING = "\u2013"
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 32
# Closer to now than this, a time reads "just now" rather than "0 minutes ago".
JUST_NOW = timedelta(minutes=1)


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


def relative_time_text(moment: datetime, now: datetime) -> str:
    """ "just now", "5 minutes ago", "in 3 days": the largest unit only, so it reads at a glance."""
    if abs(now - moment) < JUST_NOW:
        return "just now"
    if moment < now:
        return f"{timesince(moment, now, depth=1)} ago"
    return f"in {timeuntil(moment, now, depth=1)}"


@register.filter
def relative_time(moment: datetime | None) -> str:
    """A <time> element saying how long ago (or until) `moment`, with the exact UTC time on hover."""
    if moment is None:
        return MISSING
    exact = moment.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        exact,
        relative_time_text(moment, timezone.now()),
    )


@register.filter
def sanitized(html: object) -> SafeString:
    """Stored HTML of typed text (a comment rendered from Markdown when written), sanitized again by nh3 on the
    way out, so no template marks typed text safe unsanitized."""
    return mark_safe(sanitize_html(str(html or "")))  # noqa: S308 (nh3 has just cleaned it)
