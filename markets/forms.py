"""Website forms of the markets app. They parse input; the services decide and raise domain errors,
which the views turn into form errors with `add_domain_error`."""

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from accounts.money import CREDIT_PLACES, CREDIT_QUANTUM, MAX_DIGITS
from config.core.errors import DomainError
from config.core.numbers import AsciiDecimalFormField, ascii_decimal
from markets.errors import InvalidInput
from markets.models import Market, Outcome, Proposal, Resolution, Trade
from markets.services import (
    market_close,
    market_halt,
    market_liquidity_add,
    market_outcome_add,
    market_reschedule,
    market_resolve,
    market_resume,
    proposal_create,
)
from markets.services.orders import OrderRequest
from markets.services.standing import StandingRequest
from markets.trade_request import TradeRequest


class TradeMode:
    AMOUNT = "amount"
    SHARES = "shares"
    PROBABILITY = "probability"
    CHOICES = (
        (AMOUNT, "Amount (credits)"),
        (SHARES, "Shares"),
        (PROBABILITY, "My forecast (%)"),
    )


def add_domain_error(form: forms.Form, error: DomainError, field_map: dict[str, str | None] | None = None) -> None:
    """Shows a domain error next to the field it names, or above the form when it names none."""
    field = (field_map or {}).get(error.field or "", error.field)
    form.add_error(field if field in form.fields else None, error.message)


class OutcomeChoiceForm(forms.Form):
    """A form of one market whose `outcome` field offers the market's outcomes (code, labelled); with
    `first_outcome_initial`, an unbound form starts on the first."""

    first_outcome_initial = False

    def __init__(self, *args: Any, outcomes: list[Outcome], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes = outcomes
        outcome_field = cast(forms.ChoiceField, self.fields["outcome"])
        outcome_field.choices = [(outcome.code, outcome.label) for outcome in outcomes]
        if self.first_outcome_initial and outcomes and not self.is_bound:
            outcome_field.initial = outcomes[0].code


class TradeForm(OutcomeChoiceForm):
    """The trade panel. A valid form holds the TradeRequest it asks for in `cleaned_data["request"]`."""

    first_outcome_initial = True
    outcome = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose an outcome of this market.",
            "invalid_choice": "Choose an outcome of this market.",
        },
    )
    side = forms.ChoiceField(
        choices=((Trade.Side.BUY, "Buy"), (Trade.Side.SELL, "Sell")),
        initial=Trade.Side.BUY,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose to buy or to sell.", "invalid_choice": "Choose to buy or to sell."},
    )
    mode = forms.ChoiceField(
        choices=TradeMode.CHOICES,
        initial=TradeMode.AMOUNT,
        label="Trade by",
        error_messages={
            "required": "Choose to trade by amount, shares or forecast.",
            "invalid_choice": "Choose to trade by amount, shares or forecast.",
        },
    )
    value = AsciiDecimalFormField(
        label="Amount",
        min_value=CREDIT_QUANTUM,
        max_digits=16,
        decimal_places=CREDIT_PLACES,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "autocomplete": "off"}),
        # Django's own wording ("Ensure this value is greater than or equal to 0.000001.") is replaced in
        # clean() by the mode's words; these cover the codes that need no mode.
        error_messages={
            "invalid": "Enter a number, like 25 or 12.5.",
            "max_digits": "That number is too large to trade.",
            "max_whole_digits": "That number is too large to trade.",
            "max_decimal_places": "Use at most 6 decimal places.",
        },
    )
    # The previewed price, sent back as the trade's bound so a price that moved in between is refused.
    bound = AsciiDecimalFormField(
        required=False,
        widget=forms.HiddenInput,
        max_digits=MAX_DIGITS,
        decimal_places=CREDIT_PLACES,
        error_messages={"invalid": "The previewed price was not understood; check the preview and try again."},
    )
    quoted_for = forms.CharField(required=False, widget=forms.HiddenInput, max_length=200)
    # One token per rendered form, sent as the trade's idempotency key: a double-clicked or resent
    # form trades once.
    submission = forms.CharField(
        required=False, widget=forms.HiddenInput, max_length=64, initial=lambda: uuid.uuid4().hex
    )

    # Trade request and service field names -> this form's fields, so errors land next to the right input.
    FIELD_MAP: dict[str, str | None] = {
        "amount": "value",
        "shares": "value",
        "probability": "value",
        "max_cost": None,
        "min_proceeds": None,
    }

    # The value field's "required" and "too small" messages, per mode.
    VALUE_MESSAGES = {
        TradeMode.AMOUNT: ("Enter the amount of credits to trade.", "Enter an amount of at least 0.000001 credits."),
        TradeMode.SHARES: ("Enter the number of shares to trade.", "Enter at least 0.000001 shares."),
        TradeMode.PROBABILITY: ("Enter your forecast, in percent.", "Enter a forecast between 0.01% and 99.99%."),
    }

    def clean(self) -> dict[str, Any]:
        """Builds the request. "My forecast (%)" is a forecast (TradeRequest with no side): pricing decides
        which way to trade, so the side chosen on the form does not apply to it."""
        cleaned = super().clean() or {}
        required, too_small = self.VALUE_MESSAGES.get(cleaned.get("mode", ""), self.VALUE_MESSAGES[TradeMode.AMOUNT])
        value_errors = self.errors.get("value")
        if value_errors is not None:
            codes = [error.code for error in value_errors.as_data()]
            if "required" in codes or "min_value" in codes:
                self.errors["value"] = self.error_class([required if "required" in codes else too_small])
        if self.errors or not all(name in cleaned for name in ("outcome", "side", "mode", "value")):
            return cleaned
        mode, value = cleaned["mode"], cleaned["value"]
        try:
            if mode == TradeMode.PROBABILITY:
                cleaned["request"] = TradeRequest(outcome=cleaned["outcome"], side=None, probability=value / 100)
            else:
                cleaned["request"] = TradeRequest(outcome=cleaned["outcome"], side=cleaned["side"], **{mode: value})
        except InvalidInput as error:
            if error.field == "probability":
                self.add_error("value", "Enter a forecast between 0.01% and 99.99%.")
            else:
                add_domain_error(self, error, self.FIELD_MAP)
        return cleaned

    @classmethod
    def initial_from_query(cls, query: Any, *, outcomes: list[Outcome]) -> dict[str, str]:
        """What a link to the market page asks the panel to start with (?outcome=YES&side=sell&mode=shares&
        value=12.5): "Sell" on a position and "Buy" on an outcome link here. Anything unknown is ignored."""
        initial: dict[str, str] = {}
        if query.get("outcome") in {outcome.code for outcome in outcomes}:
            initial["outcome"] = query["outcome"]
        if query.get("side") in Trade.Side.values:
            initial["side"] = query["side"]
        if query.get("mode") in dict(TradeMode.CHOICES):
            initial["mode"] = query["mode"]
        value = query.get("value", "")
        try:
            if value and CREDIT_QUANTUM <= Decimal(value) < Decimal("1e10"):
                initial["value"] = value
        except ArithmeticError:
            pass
        return initial

    def request_to_execute(self, *, market_id: int) -> TradeRequest:
        """The request with this form's idempotency key and, if the preview was of this very request, its
        price as the bound. Which bound applies depends on the side pricing picks (a forecast may buy or
        sell), so the previewed amount bounds both: what a buy may cost and what a sale must pay."""
        request: TradeRequest = self.cleaned_data["request"]
        bound = self.cleaned_data.get("bound")
        if bound is not None and self.cleaned_data.get("quoted_for") == request.fingerprint(market_id=market_id):
            request = dataclasses.replace(request, max_cost=bound, min_proceeds=bound)
        token = self.cleaned_data.get("submission")
        return dataclasses.replace(request, idempotency_key=f"web:{token}") if token else request


def _default_close() -> str:
    return (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")


class MarketCreateForm(forms.Form):
    question = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"autofocus": True}))
    slug = forms.SlugField(
        max_length=120, required=False, help_text="Part of the address. Leave empty to derive it from the question."
    )
    kind = forms.ChoiceField(choices=Market.Kind.choices, initial=Market.Kind.BINARY)
    outcomes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Multiple choice only: one option per line.",
    )
    initial_probabilities = forms.CharField(
        required=False,
        max_length=500,
        help_text="Optional, in percent, comma-separated, one per outcome (e.g. 30, 70). Default: equal.",
    )
    liquidity = AsciiDecimalFormField(
        initial=Decimal("100"),
        min_value=Decimal("1"),
        max_digits=14,
        decimal_places=4,
        help_text="LMSR b: higher means prices move less per credit; the house subsidises up to b·ln(n).",
    )
    closes_at = forms.DateTimeField(
        label="Closes at (UTC)",
        # A plain text input: a datetime-local one keeps the keyboard's focus ring on its inner parts only.
        widget=forms.DateTimeInput(
            attrs={"placeholder": "2030-03-01 17:00", "autocomplete": "off"}, format="%Y-%m-%d %H:%M"
        ),
        initial=_default_close,
    )
    category = forms.CharField(max_length=50, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    resolution_criteria = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))

    def clean_slug(self) -> str:
        return self.cleaned_data.get("slug") or slugify(self.data.get("question", ""))[:120].strip("-")

    def clean_initial_probabilities(self) -> list[Decimal] | None:
        text = self.cleaned_data.get("initial_probabilities", "").strip()
        if not text:
            return None
        try:
            return [ascii_decimal(part.strip().rstrip("%")) / 100 for part in text.split(",")]
        except (ArithmeticError, ValueError):
            raise forms.ValidationError(
                "Enter percentages with the digits 0-9, separated by commas, e.g. 30, 70."
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        labels = [line.strip() for line in cleaned.get("outcomes", "").splitlines() if line.strip()]
        if cleaned.get("kind") == Market.Kind.MULTIPLE:
            if len(labels) < 2:
                self.add_error("outcomes", "List at least two options, one per line.")
            codes = [
                slugify(label).upper().replace("-", "_")[:32] or f"OPTION_{i + 1}" for i, label in enumerate(labels)
            ]
            if len(set(codes)) != len(codes):
                codes = [f"O{i + 1}" for i in range(len(labels))]
            cleaned["outcome_pairs"] = list(zip(codes, labels, strict=True))
        else:
            cleaned["outcome_pairs"] = None
        return cleaned


class MarketEditForm(forms.Form):
    question = forms.CharField(max_length=300)
    category = forms.CharField(max_length=50, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    resolution_criteria = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    reason = forms.CharField(
        required=False,
        max_length=2000,
        label="Why (public)",
        help_text="Shown with the change in the market's public revision history, e.g. a clarification.",
    )


class ResolveForm(forms.Form):
    kind = forms.ChoiceField(
        choices=Resolution.Kind.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how the market resolves."},
    )
    # Each is needed for one kind of resolution only, so neither is shown as "optional" (conditional_fields).
    outcome = forms.ChoiceField(required=False, label="Winning outcome", help_text="Needed when one outcome wins.")
    split = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Needed for a probability split: what one share of each outcome pays, comma-separated in outcome "
        "order, summing to 1.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        error_messages={"required": "Give the reason for this resolution."},
    )
    source_url = forms.CharField(
        required=False,
        max_length=500,
        label="Source link",
        help_text="Needed to propose (an http or https link to where the answer is published).",
    )
    known_at = forms.DateTimeField(
        required=False,
        label="Known at (UTC)",
        help_text="When the answer became known, e.g. 2024-06-26 10:00; trades after it are voided. Needed to propose.",
    )
    conditional_fields = ("outcome", "split", "source_url", "known_at")

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
            known_at=data.get("known_at"),
        )

    def propose(self, *, market: Market, user: User | AnonymousUser) -> Proposal:
        """A proposal with the challenge window, instead of resolving now."""
        data = self.cleaned_data
        if data.get("known_at") is None:
            raise InvalidInput("Say when the answer became known.", field="known_at")
        return proposal_create(
            market=market,
            user=user,
            kind=data["kind"],
            reason=data["reason"],
            source_url=data.get("source_url") or "",
            known_at=data["known_at"],
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


REASON_HELP = "Shown to everyone on the market page."


def _reason_field(*, required: bool = True) -> forms.CharField:
    return forms.CharField(
        required=required,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=REASON_HELP,
        error_messages={"required": "Give the reason; it is shown on the market page."},
    )


class MarketControlForm(forms.Form):
    """A staff control on a live market: the staff page and the admin both render it and call `apply`,
    which calls the control's one service (markets.services.lifecycle)."""

    action = ""
    title = ""
    button = ""

    def apply(self, *, market: Market, user: User) -> None:
        raise NotImplementedError


class CloseEarlyForm(MarketControlForm):
    action, title, button = "close", "Close early", "Close the market now"
    reason = _reason_field()

    def apply(self, *, market: Market, user: User) -> None:
        market_close(market=market, user=user, reason=self.cleaned_data["reason"])


class ExtendCloseForm(MarketControlForm):
    action, title, button = "extend", "Move the close time", "Move the close"
    closes_at = forms.DateTimeField(
        label="New close time (UTC)",
        # A plain text input: a datetime-local one keeps the keyboard's focus ring on its inner parts only.
        widget=forms.DateTimeInput(
            attrs={"placeholder": "2030-03-01 17:00", "autocomplete": "off"}, format="%Y-%m-%d %H:%M"
        ),
    )
    reason = _reason_field(required=False)

    def apply(self, *, market: Market, user: User) -> None:
        data = self.cleaned_data
        market_reschedule(market=market, closes_at=data["closes_at"], changed_by=user, reason=data["reason"])


class HaltForm(MarketControlForm):
    action, title, button = "halt", "Halt trading", "Halt trading"
    reason = _reason_field()

    def apply(self, *, market: Market, user: User) -> None:
        market_halt(market=market, user=user, reason=self.cleaned_data["reason"])


class ResumeForm(MarketControlForm):
    action, title, button = "resume", "Resume trading", "Resume trading"
    reason = _reason_field(required=False)

    def apply(self, *, market: Market, user: User) -> None:
        market_resume(market=market, user=user, reason=self.cleaned_data["reason"])


class AddLiquidityForm(MarketControlForm):
    action, title, button = "liquidity", "Add liquidity", "Raise liquidity"
    liquidity = AsciiDecimalFormField(
        label="New liquidity (b)",
        max_digits=12,
        decimal_places=4,
        help_text="Above the current b. Prices stay as they are; the house pays the extra subsidy.",
    )
    reason = _reason_field()

    def apply(self, *, market: Market, user: User) -> None:
        data = self.cleaned_data
        market_liquidity_add(market=market, user=user, liquidity=data["liquidity"], reason=data["reason"])


class AddOutcomeForm(MarketControlForm):
    action, title, button = "outcome", "Add an outcome", "Add the outcome"
    label = forms.CharField(max_length=120, label="Label")
    code = forms.CharField(
        max_length=32, required=False, help_text="Uppercase letters, digits, '-' or '_'; made from the label if empty."
    )
    probability = AsciiDecimalFormField(
        label="Starting probability (%)",
        max_digits=6,
        decimal_places=3,
        help_text="0.1 to 50. Every other outcome's probability scales down by the same factor.",
    )
    reason = _reason_field()

    def apply(self, *, market: Market, user: User) -> None:
        data = self.cleaned_data
        code = data["code"].strip() or slugify(data["label"]).upper().replace("-", "_")[:32]
        market_outcome_add(
            market=market,
            user=user,
            code=code,
            label=data["label"],
            probability=data["probability"] / 100,
            reason=data["reason"],
        )


MARKET_CONTROLS: dict[str, type[MarketControlForm]] = {
    form.action: form
    for form in (CloseEarlyForm, ExtendCloseForm, HaltForm, ResumeForm, AddLiquidityForm, AddOutcomeForm)
}


def market_controls_for(market: Market) -> list[str]:
    """The controls that apply to the market as it stands (the page shows these)."""
    if market.status == Market.Status.DRAFT:
        return ["extend"]
    if market.status != Market.Status.OPEN:
        return []
    actions = ["close", "extend", "resume" if market.is_halted else "halt", "liquidity"]
    if market.kind == Market.Kind.MULTIPLE:
        actions.append("outcome")
    return actions


class CommentForm(forms.Form):
    """A comment or reply on the market page; markets.services.comments checks the text."""

    body = forms.CharField(
        label="Your comment",
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": 10_000}),
        # The service says what is wrong (empty, too long, NUL) in the one place it is decided.
        required=False,
        strip=False,
        max_length=20_000,
        help_text="Markdown: *emphasis*, [links](https://…), lists, > quotes, `code`. @name mentions a forecaster.",
    )
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)
    attach_forecast = forms.BooleanField(required=False, label="Attach my current forecast")


class CommentEditForm(forms.Form):
    body = forms.CharField(
        label="Your comment", widget=forms.Textarea(attrs={"rows": 6}), required=False, strip=False, max_length=20_000
    )


class CommentReportForm(forms.Form):
    reason = forms.CharField(label="Why should staff look at it?", required=False, max_length=500)


class LimitOrderForm(OutcomeChoiceForm):
    """The trade panel's order tab: "buy Yes at most at 60%, up to 50 credits, until Friday". A valid form holds
    the OrderRequest it asks for in `cleaned_data["request"]`."""

    outcome = forms.ChoiceField(
        error_messages={"required": "Choose an outcome.", "invalid_choice": "Choose an outcome of this market."}
    )
    side = forms.ChoiceField(
        choices=((Trade.Side.BUY, "Buy at most at"), (Trade.Side.SELL, "Sell at least at")),
        initial=Trade.Side.BUY,
        error_messages={"required": "Choose to buy or to sell.", "invalid_choice": "Choose to buy or to sell."},
    )
    limit = AsciiDecimalFormField(
        label="Limit (%)",
        max_digits=6,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "max": "99.99", "inputmode": "decimal"}),
        error_messages={
            "required": "Enter the limit, in percent.",
            "invalid": "Enter a percentage, like 60.",
            "max_decimal_places": "Use at most 2 decimal places.",
            "max_digits": "Enter a percentage between 0.01 and 99.99.",
            "max_whole_digits": "Enter a percentage between 0.01 and 99.99.",
        },
    )
    size = AsciiDecimalFormField(
        label="Size",
        max_digits=16,
        decimal_places=CREDIT_PLACES,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "inputmode": "decimal"}),
        help_text="Credits to spend when buying, shares to sell when selling.",
        error_messages={
            "required": "Enter the size: credits to spend, or shares to sell.",
            "invalid": "Enter a number, like 50.",
            "max_decimal_places": "Use at most 6 decimal places.",
        },
    )
    expires_at = forms.DateTimeField(
        label="Good till (optional)",
        required=False,
        # A plain text input: a datetime-local one keeps the keyboard's focus ring on its inner parts only.
        widget=forms.DateTimeInput(
            attrs={"placeholder": "2030-03-01 17:00", "autocomplete": "off"}, format="%Y-%m-%d %H:%M"
        ),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": "Enter a date and time, or leave it empty: good till cancelled."},
    )
    submission = forms.CharField(
        required=False, widget=forms.HiddenInput, max_length=64, initial=lambda: uuid.uuid4().hex
    )

    # The service's field names -> this form's fields.
    FIELD_MAP: dict[str, str | None] = {"limit": "limit", "size": "size", "expires_at": "expires_at"}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        limit = cleaned.get("limit")
        if limit is not None and not Decimal("0.01") <= limit <= Decimal("99.99"):
            self.add_error("limit", "Enter a limit between 0.01% and 99.99%.")
        if self.errors:
            return cleaned
        try:
            request = OrderRequest(
                outcome=cleaned["outcome"],
                side=cleaned["side"],
                limit=cleaned["limit"] / 100,
                size=cleaned["size"],
                expires_at=cleaned.get("expires_at"),
                idempotency_key=cleaned.get("submission") or None,
            )
            request.check(now=timezone.now())
        except InvalidInput as error:
            add_domain_error(self, error, self.FIELD_MAP)
            return cleaned
        cleaned["request"] = request
        return cleaned


class StandingForecastForm(OutcomeChoiceForm):
    """The standing-forecast form on the market page. The belief is given in percent here (the API takes a
    probability); the service checks the rest and its refusals name these fields."""

    outcome = forms.ChoiceField(
        label="On outcome",
        error_messages={
            "required": "Choose an outcome of this market.",
            "invalid_choice": "Choose an outcome of this market.",
        },
    )
    belief = AsciiDecimalFormField(
        label="I believe (%)",
        max_digits=6,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "required": "Enter your belief, in percent.",
            "invalid": "Enter your belief as a number of percent, e.g. 70.",
            "max_decimal_places": "Give your belief to a hundredth of a percent.",
            "max_digits": "Enter a belief between 0% and 100%.",
            "max_whole_digits": "Enter a belief between 0% and 100%.",
        },
    )
    band = AsciiDecimalFormField(
        label="Within (points)",
        initial=Decimal("3"),
        max_digits=6,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "required": "Enter the band, in percentage points.",
            "invalid": "Enter the band as a number of points, e.g. 3.",
            "max_decimal_places": "Give the band to a hundredth of a point.",
            "max_digits": "Enter a narrower band.",
            "max_whole_digits": "Enter a narrower band.",
        },
    )
    budget = AsciiDecimalFormField(
        label="Up to (credits)",
        max_digits=16,
        decimal_places=CREDIT_PLACES,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "required": "Enter a budget in credits.",
            "invalid": "Enter the budget as a number of credits.",
            "max_decimal_places": "Give the budget to at most 6 decimal places.",
            "max_digits": "That budget is too large.",
            "max_whole_digits": "That budget is too large.",
        },
    )
    # A text box, not a date-time one: Chromium keeps a date-time box's keyboard focus in inner fields that draw no
    # focus ring (tests/browser/test_accessibility.py).
    expires_at = forms.DateTimeField(
        label="Until (optional, UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM", "autocomplete": "off"}),
        error_messages={"invalid": "Enter a date and time as YYYY-MM-DD HH:MM, or leave it empty for until cancelled."},
    )

    first_outcome_initial = True

    def __init__(self, *args: Any, outcomes: list[Outcome], **kwargs: Any) -> None:
        # Its own ids: the trade panel's form is on the same page.
        kwargs.setdefault("auto_id", "standing_%s")
        super().__init__(*args, outcomes=outcomes, **kwargs)

    def clean_belief(self) -> Decimal:
        belief: Decimal = self.cleaned_data["belief"]
        if not 0 < belief < 100:
            raise forms.ValidationError("Enter a belief strictly between 0% and 100%.")
        return belief

    def standing_request(self) -> StandingRequest:
        data = self.cleaned_data
        return StandingRequest(
            outcome=data["outcome"],
            belief=data["belief"] / 100,
            band_points=data["band"],
            budget=data["budget"],
            expires_at=data["expires_at"],
        )
