"""The market_url template filter: the URL {% url 'markets:detail' slug %} gives, reversed once per slug."""

from django.template import engines
from django.urls import clear_script_prefix, reverse, set_script_prefix

from markets.templatetags.market_links import market_url


def test_market_url_is_the_detail_url():
    assert market_url("rutte-nato") == reverse("markets:detail", args=["rutte-nato"]) == "/markets/rutte-nato/"


def test_market_url_follows_the_script_prefix():
    set_script_prefix("/forecastle/")
    try:
        assert market_url("rutte-nato") == "/forecastle/markets/rutte-nato/"
    finally:
        clear_script_prefix()
    assert market_url("rutte-nato") == "/markets/rutte-nato/"


def test_market_url_renders_like_the_url_tag():
    template = engines["django"].from_string(
        "{% load market_links %}{% url 'markets:detail' slug %}|{{ slug|market_url }}"
    )
    tag, filtered = template.render({"slug": "brent-above-90"}).split("|")
    assert tag == filtered
