"""Links to market pages from templates that list many markets."""

from functools import lru_cache

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@lru_cache(maxsize=4096)
def _market_url(slug: str, prefix: str, urlconf: str | None) -> str:
    return reverse("markets:detail", args=[slug], urlconf=urlconf)


@register.filter
def market_url(slug: str) -> str:
    """The market page's URL, as {% url 'markets:detail' slug %} gives it.

    Pages list a market per row (60 rows on a full portfolio); reversing each was a tenth of the page's
    time, so a slug is reversed once per script prefix and URLconf, the two things the result depends on."""
    return _market_url(slug, get_script_prefix(), get_urlconf())
