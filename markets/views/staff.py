"""Staff pages: the queue of markets awaiting resolution, and resolving one with a confirm step.

The same ResolveForm backs the admin's resolve page (markets/admin.py); both call `market_resolve`.
Anyone who is not staff gets 403, signed in or not.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.errors import DomainError
from accounts.models import User
from markets.forms import add_domain_error
from markets.models import Market, Outcome, Resolution
from markets.services import market_resolve

AWAITING = (Market.Status.OPEN, Market.Status.CLOSED, Market.Status.RESOLVING)


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for everyone but staff (no login redirect: the page is not for them)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise PermissionDenied("Staff only.")
        return view(request, *args, **kwargs)

    return wrapped


class ResolveForm(forms.Form):
    kind = forms.ChoiceField(choices=Resolution.Kind.choices, widget=forms.RadioSelect)
    outcome = forms.ChoiceField(required=False, help_text="The winning outcome, when one outcome wins.")
    split = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Split only: what one share of each outcome pays, comma-separated in outcome order, summing to 1.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)

    def __init__(self, *args: Any, outcomes: list[Outcome], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes = outcomes
        outcome_field = self.fields["outcome"]
        assert isinstance(outcome_field, forms.ChoiceField)
        outcome_field.choices = [("", "—")] + [(o.code, o.label) for o in outcomes]
        self.fields["split"].help_text += " Outcomes: " + ", ".join(o.code for o in outcomes) + "."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind == Resolution.Kind.OUTCOME and not cleaned.get("outcome"):
            self.add_error("outcome", "Choose the winning outcome.")
        split_text = cleaned.get("split", "")
        cleaned["split_values"] = [part.strip() for part in split_text.split(",")] if split_text.strip() else []
        if kind == Resolution.Kind.SPLIT and not cleaned["split_values"]:
            self.add_error("split", "Give the split, e.g. 0.3, 0.7.")
        return cleaned

    def resolve(self, *, market: Market, user: User | AnonymousUser) -> Resolution:
        data = self.cleaned_data
        return market_resolve(
            market=market,
            user=user,
            kind=data["kind"],
            reason=data["reason"],
            outcome_code=data.get("outcome") or None,
            split=data["split_values"] or None,
        )

    def summary(self) -> list[tuple[str, str]]:
        """What each outcome's share will pay, for the confirm step."""
        data = self.cleaned_data
        if data["kind"] == Resolution.Kind.ANNULLED:
            return []
        if data["kind"] == Resolution.Kind.OUTCOME:
            return [(o.label, "1" if o.code == data["outcome"] else "0") for o in self.outcomes]
        return [(o.label, value) for o, value in zip(self.outcomes, data["split_values"], strict=False)]


@staff_required
@require_GET
def resolution_queue_view(request: HttpRequest) -> HttpResponse:
    """Closed markets awaiting a resolution first, then those whose close time passed, then settling."""
    markets = (
        Market.objects.filter(status__in=AWAITING)
        .filter(Q(status__in=[Market.Status.CLOSED, Market.Status.RESOLVING]) | Q(closes_at__lte=timezone.now()))
        .annotate(traders=Count("positions__user", distinct=True))
        .order_by("closes_at")
    )
    recent = Resolution.objects.select_related("market", "created_by", "outcome").order_by("-created_at")[:20]
    return render(request, "markets/staff/queue.html", {"markets": markets, "recent": recent})


@staff_required
@require_http_methods(["GET", "POST"])
def resolve_view(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the form. POST: the confirm step (what will be paid); POST with `confirm`: resolve."""
    market = Market.objects.filter(slug=slug).first()
    if market is None:
        raise Http404("No such market.")
    outcomes = list(market.outcomes.all())
    form = ResolveForm(request.POST or None, outcomes=outcomes)
    confirming = False
    if request.method == "POST" and form.is_valid():
        if request.POST.get("confirm") == "yes":
            try:
                form.resolve(market=market, user=request.user)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, "Resolution recorded; settlement is on its way.")
                return redirect("markets:staff-resolutions")
        else:
            confirming = True
    context = {
        "market": market,
        "form": form,
        "confirming": confirming,
        "summary": form.summary() if confirming else [],
        "history": market.resolutions.select_related("created_by", "outcome"),
    }
    return render(request, "markets/staff/resolve.html", context, status=422 if form.errors else 200)
