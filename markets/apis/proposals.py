"""Resolution proposals and their challenges (docs/settlement.md).

GET /api/v1/markets/{slug}/proposals/ is public; POST there is for resolvers. Traders challenge with
POST /api/v1/markets/{slug}/proposals/{id}/challenges/, posting the bond (rate-limited per account); a resolver
decides a challenged proposal with POST /api/v1/markets/{slug}/proposals/{id}/decision/, through the service the
website's staff queue calls (challenge_decide)."""

from collections.abc import Sequence
from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import HasKeyScope
from config.core.api import AnonReadThrottle, ChallengeThrottle, UserReadThrottle
from markets.apis.common import IsResolver, money_field, public_market_or_404, staff_market_or_404
from markets.models import Market, Proposal, Resolution
from markets.selectors.proposals import market_proposals
from markets.services import challenge_create, challenge_decide, proposal_create
from markets.services.proposals import Decision


class ChallengeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    proposal = serializers.IntegerField(source="proposal_id")
    username = serializers.CharField(source="user.username")
    reason = serializers.CharField()
    bond = money_field(help_text="Credits held in the ledger until a resolver decides.")
    state = serializers.CharField(help_text="'open' (awaiting staff), 'upheld' (bond returned) or 'rejected' (kept).")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class ProposalOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    kind = serializers.ChoiceField(choices=Resolution.Kind.choices)
    outcome = serializers.CharField(source="outcome.code", allow_null=True, default=None)
    payouts = serializers.SerializerMethodField(help_text="Credits paid per share of each outcome; null when annulled.")
    reason = serializers.CharField()
    source_url = serializers.URLField()
    known_at = serializers.DateTimeField(allow_null=True, help_text="When the answer became known.")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    challenge_until = serializers.DateTimeField(help_text="Challenges are taken until then.")
    state = serializers.ChoiceField(choices=Proposal.State.choices)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField(allow_blank=True)
    resolution = serializers.IntegerField(
        source="resolution_id", allow_null=True, help_text="The resolution it became, once final."
    )
    challenges = ChallengeOutputSerializer(many=True, source="challenges.all")

    def get_payouts(self, proposal: Proposal) -> dict[str, str] | None:
        if proposal.payouts is None:
            return None
        codes = [outcome.code for outcome in proposal.market.outcomes.all()]
        return dict(zip(codes, proposal.payouts, strict=False))


class MarketProposalsApi(APIView):
    """GET: a market's proposals, newest first, with their challenges (public). POST: propose (resolvers)."""

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Resolution.Kind.choices)
        outcome = serializers.CharField(required=False, max_length=32)
        split = serializers.ListField(
            child=serializers.CharField(max_length=20), required=False, allow_empty=False, max_length=50
        )
        reason = serializers.CharField(max_length=2000)
        source_url = serializers.CharField(max_length=500, help_text="An http or https link to the source.")
        known_at = serializers.DateTimeField(
            help_text="When the answer became known; trades after it (if before the close) are voided."
        )

    required_scope = {"GET": Scope.READ, "POST": Scope.RESOLVE}

    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "POST":
            return [HasKeyScope(), IsResolver()]
        return super().get_permissions()

    @extend_schema(
        operation_id="markets_proposals_list",
        summary="A market's resolution proposals and their challenges",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH)],
        responses={200: ProposalOutputSerializer(many=True)},
    )
    def get(self, request: Request, slug: str) -> Response:
        market = public_market_or_404(slug)
        return Response(ProposalOutputSerializer(market_proposals(market=market), many=True).data)

    @extend_schema(
        operation_id="markets_proposals_create",
        summary="Propose a resolution, open to challenge for the window (resolvers)",
        request=InputSerializer,
        responses={201: ProposalOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        market = staff_market_or_404(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        proposal = proposal_create(
            market=market,
            user=request.user,
            kind=data["kind"],
            reason=data["reason"],
            source_url=data["source_url"],
            known_at=data["known_at"],
            outcome_code=data.get("outcome"),
            split=data.get("split"),
        )
        proposal = market_proposals(market=market).get(pk=proposal.pk)
        return Response(ProposalOutputSerializer(proposal).data, status=status.HTTP_201_CREATED)


class ProposalChallengesApi(APIView):
    """POST /api/v1/markets/{slug}/proposals/{id}/challenges/: a trader of the market contests the proposal,
    posting the bond (201; 200 with the first challenge when the trader had already challenged it)."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.TRADE

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [ChallengeThrottle()]
        return [AnonReadThrottle(), UserReadThrottle()]

    @extend_schema(
        operation_id="markets_proposals_challenges_create",
        summary="Challenge a proposal, posting the bond (traders of the market)",
        parameters=[
            OpenApiParameter("slug", str, OpenApiParameter.PATH),
            OpenApiParameter("proposal_id", int, OpenApiParameter.PATH),
        ],
        request=InputSerializer,
        responses={201: ChallengeOutputSerializer, 200: ChallengeOutputSerializer},
    )
    def post(self, request: Request, slug: str, proposal_id: int) -> Response:
        proposal = _proposal_or_404(public_market_or_404(slug), proposal_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = challenge_create(
            proposal=proposal,
            user=cast(User, request.user),  # IsAuthenticated
            reason=serializer.validated_data["reason"],
        )
        return Response(
            ChallengeOutputSerializer(result.challenge).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class ProposalDecisionApi(APIView):
    """POST /api/v1/markets/{slug}/proposals/{id}/decision/: a resolver upholds or rejects a challenged
    proposal's challenges, all together, as the staff queue does. Uphold: every bond goes back and the proposal
    is overturned (the market waits, closed, for a new proposal or a direct resolution). Reject: the house keeps
    the bonds and the proposal becomes final (settlement is enqueued). Sending the same decision again returns
    the decided proposal (200) and moves nothing; a different one is 409."""

    permission_classes = [HasKeyScope, IsResolver]
    required_scope = Scope.RESOLVE

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(
            choices=[(Decision.UPHOLD, "Uphold the challenges"), (Decision.REJECT, "Reject the challenges")],
            help_text="`uphold`: the challengers were right (bonds returned, proposal overturned); "
            "`reject`: the proposal stands (bonds kept by the house, proposal final).",
        )
        note = serializers.CharField(max_length=2000, help_text="Why: shown with the proposal on the market page.")

    @extend_schema(
        operation_id="markets_proposals_decision_create",
        summary="Uphold or reject a challenged proposal's challenges (resolvers)",
        parameters=[
            OpenApiParameter("slug", str, OpenApiParameter.PATH),
            OpenApiParameter("proposal_id", int, OpenApiParameter.PATH),
        ],
        request=InputSerializer,
        responses={200: ProposalOutputSerializer},
    )
    def post(self, request: Request, slug: str, proposal_id: int) -> Response:
        market = staff_market_or_404(slug)
        proposal = _proposal_or_404(market, proposal_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decided = challenge_decide(
            proposal=proposal,
            user=request.user,
            decision=serializer.validated_data["decision"],
            note=serializer.validated_data["note"],
        )
        return Response(ProposalOutputSerializer(market_proposals(market=market).get(pk=decided.pk)).data)


def _proposal_or_404(market: Market, proposal_id: int) -> Proposal:
    try:
        return Proposal.objects.get(pk=proposal_id, market=market)
    except Proposal.DoesNotExist:
        raise NotFound(f"No proposal {proposal_id} on this market.") from None
