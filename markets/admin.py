"""Staff tools in the admin. Markets are created and resolved only through the services
(`market_create`, `market_resolve`), never by saving model forms, so the admin cannot bypass the
ledger: its add page and resolve page are plain forms calling those services.

Once a market has opened, what prices and money depend on (kind, liquidity, slug, every outcome's code,
index and label) is read-only: the escrow was funded for that b and those outcomes, and traders bought
those outcomes. Its texts change through `market_update` and its close time through `market_reschedule`
(locked and audited), never by saving the model form; the live controls (close early, halt, resume, add
liquidity, add an outcome) are plain forms (markets.forms.MARKET_CONTROLS) calling their services, as
on the staff pages."""

from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from config.core.admin import LABELLED_DATETIME, BlankAwareValuesFilter, ReadOnlyAdmin, ReadOnlyInline
from config.core.errors import DomainError
from markets.forms import MARKET_CONTROLS, MarketCreateForm, ResolveForm, add_domain_error, market_controls_for
from markets.models import (
    Challenge,
    Comment,
    CommentReport,
    LimitOrder,
    Market,
    MarketEvent,
    Outcome,
    Payout,
    Proposal,
    ReconciliationRun,
    Resolution,
    StandingForecast,
    Trade,
)
from markets.services import market_create, market_reschedule, user_is_resolver
from markets.services.comments import comment_hide, comment_report_dismiss
from markets.services.lifecycle import EDITABLE_TEXT_FIELDS, market_update


def _has_opened(market: Market | None) -> bool:
    return market is not None and market.status != Market.Status.DRAFT


class OutcomeInline(admin.TabularInline):
    """Editable on a draft; read-only once the market has opened."""

    model = Outcome
    extra = 0
    fields = ("index", "code", "label", "initial_probability", "probability", "shares_outstanding")
    readonly_fields = ("initial_probability", "probability", "shares_outstanding")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _has_opened(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ResolutionInline(ReadOnlyInline):
    """The audit trail: every resolution, re-resolution and annulment of the market."""

    model = Resolution
    fk_name = "market"
    fields = ("created_at", "created_by", "kind", "outcome", "payouts", "reason", "state", "is_current", "settled_at")
    readonly_fields = fields
    ordering = ("-created_at",)


class MarketEventInline(ReadOnlyInline):
    """The audit trail of staff actions on the market (close, halt, liquidity, outcomes, text revisions)."""

    model = MarketEvent
    fields = ("created_at", "actor", "kind", "reason", "data")
    readonly_fields = fields
    ordering = ("-created_at",)


class CategoryFilter(BlankAwareValuesFilter):
    title = "category"
    parameter_name = "category"


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = (
        "question",
        "slug",
        "kind",
        "category",
        "status",
        "escrow_balance",
        "volume",
        "closes_at",
        "resolved_at",
        "created_at",
    )
    list_filter = ("status", "kind", CategoryFilter, "closes_at")
    formfield_overrides = LABELLED_DATETIME
    search_fields = ("question", "slug", "description")
    list_select_related = ("escrow",)
    date_hierarchy = "closes_at"
    readonly_fields = (
        "escrow",
        "subsidy",
        "volume",
        "status",
        "opens_at",
        "closed_at",
        "resolved_at",
        "created_by",
        "halted_at",
        "halt_reason",
        "control_links",
        "resolve_link",
    )
    actions = ["resolve_selected"]
    # Read-only once the market has opened: the escrow and every position depend on them.
    pricing_fields = ("kind", "liquidity", "slug")

    def get_readonly_fields(self, request: HttpRequest, obj: Market | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if _has_opened(obj):
            fields += self.pricing_fields
            assert obj is not None
            if obj.status != Market.Status.OPEN:
                fields.append("closes_at")
        return fields

    def save_model(self, request: HttpRequest, obj: Market, form: Any, change: bool) -> None:
        """A draft is saved as edited; an opened market's changes go through the services."""
        stored = Market.objects.get(pk=obj.pk) if change else None
        if stored is None or not _has_opened(stored):
            super().save_model(request, obj, form, change)
            return
        texts = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE_TEXT_FIELDS}
        try:
            if texts:
                market_update(market=stored, user=cast(User, request.user), reason="Edited in the admin.", **texts)
            if "closes_at" in form.changed_data:
                market_reschedule(
                    market=stored, closes_at=form.cleaned_data["closes_at"], changed_by=cast(User, request.user)
                )
        except DomainError as error:
            # The form checked the same rules; this is a race with the market's own lifecycle.
            self.message_user(request, f"Not saved: {error.message}", messages.ERROR)

    def get_form(self, request: HttpRequest, obj: Market | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if not _has_opened(obj):
            return form

        class OpenedMarketForm(form):  # type: ignore[valid-type,misc]
            """Checks a new close time as market_reschedule will, so a mistake is a form error."""

            def clean_closes_at(self) -> Any:
                closes_at = self.cleaned_data["closes_at"]
                if "closes_at" in self.changed_data and closes_at <= timezone.now():
                    raise ValidationError("The close time must be in the future.")
                return closes_at

        return OpenedMarketForm

    def has_delete_permission(self, request: HttpRequest, obj: Market | None = None) -> bool:
        """A market owns an escrow account in the ledger and its trades: it is annulled, never deleted."""
        return False

    def get_inlines(self, request: HttpRequest, obj: Market | None) -> list[type[admin.options.InlineModelAdmin]]:
        return [OutcomeInline, ResolutionInline, MarketEventInline] if obj is not None else []

    @admin.display(description="Escrow", ordering="escrow__balance")
    def escrow_balance(self, market: Market) -> Any:
        return market.escrow.balance

    @admin.display(description="Resolution")
    def resolve_link(self, market: Market) -> str:
        url = reverse("admin:markets_market_resolve", args=[market.pk])
        return format_html('<a class="button" href="{}">Resolve, re-resolve or annul…</a>', url)

    @admin.display(description="Live controls")
    def control_links(self, market: Market) -> str:
        actions = market_controls_for(market)
        if not actions:
            return "None: the market is no longer open."
        return format_html_join(
            " ",
            '<a class="button" href="{}">{}</a>',
            (
                (reverse("admin:markets_market_control", args=[market.pk, action]), MARKET_CONTROLS[action].title)
                for action in actions
            ),
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:market_id>/control/<str:action>/",
                self.admin_site.admin_view(self.control_view),
                name="markets_market_control",
            ),
            path(
                "<int:market_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="markets_market_resolve",
            ),
        ]
        return custom + super().get_urls()

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        """Resolvers only: staff with the resolve_market permission (the action is hidden from others)."""
        return user_is_resolver(request.user)

    @admin.action(description="Resolve the selected market…", permissions=["resolve"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[Market]) -> HttpResponse | None:
        """Opens the resolve form: each market needs its own outcome and reason, so one at a time."""
        if not user_is_resolver(request.user):
            raise PermissionDenied
        market_ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(market_ids) != 1:
            self.message_user(request, "Select exactly one market to resolve.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:markets_market_resolve", args=[market_ids[0]]))

    def resolve_view(self, request: HttpRequest, market_id: int) -> HttpResponse:
        if not user_is_resolver(request.user):
            raise PermissionDenied
        market = get_object_or_404(Market, pk=market_id)
        form = ResolveForm(request.POST or None, outcomes=list(market.outcomes.all()))
        if request.method == "POST" and form.is_valid():
            try:
                resolution = form.resolve(market=market, user=request.user)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                self.log_change(request, market, f"Resolved: {resolution.get_kind_display()} ({resolution.reason})")
                self.message_user(request, "Resolution recorded; settlement queued.", messages.SUCCESS)
                return redirect("admin:markets_market_change", market.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Resolve: {market.question}",
            "market": market,
            "form": form,
            "history": market.resolutions.select_related("created_by", "outcome"),
        }
        return TemplateResponse(request, "markets/staff/admin_resolve.html", context)

    def control_view(self, request: HttpRequest, market_id: int, action: str) -> HttpResponse:
        """One live control (close early, move the close, halt, resume, liquidity, outcome) through its service."""
        if not request.user.is_staff:
            raise PermissionDenied
        form_class = MARKET_CONTROLS.get(action)
        if form_class is None:
            raise Http404("No such control.")
        market = get_object_or_404(Market, pk=market_id)
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                form.apply(market=market, user=cast(User, request.user))
            except DomainError as error:
                add_domain_error(form, error)
            else:
                self.message_user(request, f"{form.title}: done.", messages.SUCCESS)
                return redirect("admin:markets_market_change", market.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{form.title}: {market.question}",
            "market": market,
            "form": form,
        }
        return TemplateResponse(request, "markets/staff/admin_control.html", context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        """Markets are created by market_create (escrow, subsidy, outcomes), never by a model form."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = MarketCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                market = market_create(
                    slug=data["slug"],
                    question=data["question"],
                    kind=data["kind"],
                    liquidity=data["liquidity"],
                    closes_at=data["closes_at"],
                    outcomes=data["outcome_pairs"],
                    initial_probabilities=data["initial_probabilities"],
                    description=data["description"],
                    resolution_criteria=data["resolution_criteria"],
                    category=data["category"],
                    created_by=cast(User, request.user),  # admin_view admits staff only
                )
            except DomainError as error:
                add_domain_error(form, error)
            else:
                self.log_addition(request, market, [{"added": {}}])
                self.message_user(request, "Market created and open for trading.", messages.SUCCESS)
                return redirect("admin:markets_market_change", market.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Add market",
            "form": form,
        }
        return TemplateResponse(request, "markets/staff/admin_add_market.html", context)


@admin.register(Resolution)
class ResolutionAdmin(ReadOnlyAdmin):
    """The audit log of resolutions. Read-only: a mistake is fixed by re-resolving, never by editing."""

    list_display = ("created_at", "market", "kind", "outcome", "state", "is_current", "created_by", "settled_at")
    list_filter = ("kind", "state", "is_current")
    search_fields = ("market__slug", "market__question", "reason", "created_by__username")
    list_select_related = ("market", "outcome", "created_by")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Resolution._meta.fields]


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    """The audit log of proposals. Read-only: resolvers propose and decide through the services (the API or
    the staff pages), so every bond moves through the ledger."""

    list_display = ("created_at", "market", "kind", "outcome", "state", "challenge_until", "created_by")
    list_filter = ("state", "kind")
    search_fields = ("market__slug", "market__question", "reason", "created_by__username")
    list_select_related = ("market", "outcome", "created_by")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Proposal._meta.fields]


@admin.register(Challenge)
class ChallengeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "market", "user", "bond", "state", "decided_by", "decided_at")
    list_filter = ("state",)
    search_fields = ("market__slug", "user__username", "reason")
    list_select_related = ("market", "user", "decided_by")
    raw_id_fields = ("proposal", "market", "user")
    readonly_fields = [field.name for field in Challenge._meta.fields]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "market", "user", "amount", "resolution")
    list_filter = ("resolution__kind", "resolution__state")
    search_fields = ("market__slug", "user__username")
    list_select_related = ("market", "user", "resolution")
    raw_id_fields = ("market", "user", "resolution")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    """Each hourly reconciliation; a run with violations is the first thing staff should look at."""

    list_display = ("started_at", "violation_count", "finished_at")
    list_filter = ("started_at",)
    readonly_fields = ("started_at", "finished_at", "violation_count", "violation_list")
    fields = readonly_fields

    @admin.display(description="Violations")
    def violation_list(self, run: ReconciliationRun) -> str:
        if not run.violations:
            return "None: every invariant held."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((v,) for v in run.violations)))


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    """Trades. `fill`: a resting limit order's fill (triggered by someone else's trade); `order`: the limit order
    the trade executed (a fill, or its part that traded when placed)."""

    list_display = (
        "created_at",
        "market",
        "user",
        "side",
        "outcome",
        "shares",
        "amount",
        "fill",
        "order_link",
        "voided_at",
    )
    list_filter = (
        "side",
        "fill",
        ("order", admin.EmptyFieldListFilter),
        "market__status",
        ("voided_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("market__question", "market__slug", "user__username")
    list_select_related = ("market", "user", "outcome")
    raw_id_fields = ("order",)
    date_hierarchy = "created_at"

    @admin.display(description="Order", ordering="order_id")
    def order_link(self, trade: Trade) -> str | None:
        if trade.order_id is None:
            return None  # the admin's empty value
        url = reverse("admin:markets_limitorder_change", args=[trade.order_id])
        return format_html('<a href="{}">#{}</a>', url, trade.order_id)


@admin.register(LimitOrder)
class LimitOrderAdmin(ReadOnlyAdmin):
    """Limit orders. Read-only: an order's reserve moves only through the ledger (markets.services.orders); staff
    cancel a market's orders by closing or halting it."""

    list_display = (
        "created_at",
        "market",
        "user",
        "side",
        "outcome",
        "limit_probability",
        "size",
        "remaining",
        "status",
        "expires_at",
    )
    list_filter = ("status", "side", "market__status")
    search_fields = ("market__slug", "market__question", "user__username")
    list_select_related = ("market", "user", "outcome")
    raw_id_fields = ("market", "user", "outcome")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in LimitOrder._meta.fields]


class StandingOrderInline(ReadOnlyInline):
    """The orders a standing forecast armed: the open pair, and those that filled, were re-armed or ended."""

    model = LimitOrder
    fk_name = "standing_forecast"
    fields = ("created_at", "side", "limit_probability", "size", "remaining", "filled_amount", "status", "end_reason")
    readonly_fields = fields
    ordering = ("-created_at", "-id")


@admin.register(StandingForecast)
class StandingForecastAdmin(ReadOnlyAdmin):
    """Read-only: standing forecasts and their orders move reserves, so only markets.services.standing writes them."""

    list_display = ("created_at", "market", "user", "outcome", "belief", "band", "budget", "spent", "status")
    list_filter = ("status", "market__status")
    search_fields = ("market__question", "market__slug", "user__username")
    list_select_related = ("market", "user", "outcome")
    date_hierarchy = "created_at"
    inlines = [StandingOrderInline]


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    """Comments are written by their authors only; staff hide them (an action here, or the moderation queue)."""

    list_display = ("id", "market", "author", "created_at", "edited_at", "deleted_at", "hidden_at")
    list_filter = (("hidden_at", admin.EmptyFieldListFilter), ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("body", "author__username", "market__slug")
    list_select_related = ("market", "author")
    actions = ["hide"]

    @admin.action(description="Hide the selected comments")
    def hide(self, request: HttpRequest, queryset: QuerySet[Comment]) -> None:
        staff = cast(User, request.user)
        for comment in queryset:
            comment_hide(comment=comment, staff=staff)
        self.message_user(request, "Hidden.", messages.SUCCESS)


@admin.register(CommentReport)
class CommentReportAdmin(ReadOnlyAdmin):
    """The moderation queue (also a staff page: /staff/comments/). Hiding closes every open report of it."""

    list_display = ("id", "comment", "reporter", "reason", "state", "created_at", "handled_by")
    list_filter = ("state",)
    list_select_related = ("comment", "reporter", "handled_by")
    actions = ["hide_comments", "dismiss"]

    @admin.action(description="Hide the reported comments")
    def hide_comments(self, request: HttpRequest, queryset: QuerySet[CommentReport]) -> None:
        staff = cast(User, request.user)
        for report in queryset.select_related("comment"):
            comment_hide(comment=report.comment, staff=staff)
        self.message_user(request, "Comments hidden.", messages.SUCCESS)

    @admin.action(description="Dismiss the selected reports (keep the comments)")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[CommentReport]) -> None:
        staff = cast(User, request.user)
        for report in queryset:
            comment_report_dismiss(report=report, staff=staff)
        self.message_user(request, "Reports dismissed.", messages.SUCCESS)
