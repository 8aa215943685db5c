"""The discussion under a market (comments/), one comment (comments/{id}/, its reports/, and hide/ for staff),
following a market (follow/) and the signed-in user's feed (me/feed/)."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import HasKeyScope
from config.core.api import (
    PAGINATION_PARAMETERS_HELP,
    AnonReadThrottle,
    CommentThrottle,
    UserReadThrottle,
    paginated_response,
    paginated_schema,
)
from markets.apis.common import TradeOutputSerializer, money_field, probability_field, public_market_or_404
from markets.models import Comment
from markets.selectors.comments import ORDERINGS, comment_visible, market_comments
from markets.selectors.follows import market_followed, user_feed
from markets.services.comments import (
    COMMENT_MAX_CHARS,
    REPORT_REASON_MAX_CHARS,
    comment_create,
    comment_delete,
    comment_edit,
    comment_hide,
    comment_report,
)
from markets.services.follows import market_follow_set

# With an API key: reading needs `read`; writing as the user (comments, reports, follows) needs `trade`, the scope
# of a key that acts for its account (a read-only key cannot post).
SOCIAL_SCOPES = {
    "GET": Scope.READ,
    "POST": Scope.TRADE,
    "PATCH": Scope.TRADE,
    "DELETE": Scope.TRADE,
}

# The service (comment_body_clean) words the rest; these are the checks the serializer makes first.
BODY_ERRORS: dict[str, Any] = {
    "blank": "Write something first: the comment is empty.",
    "max_length": f"A comment is at most {COMMENT_MAX_CHARS:,} characters.",
}


class PositionHeldSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text="Outcome code.")
    label = serializers.CharField()  # type: ignore[assignment]
    shares = money_field(help_text="Shares held when the comment was written.")


class ForecastSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text="Outcome code.")
    label = serializers.CharField()  # type: ignore[assignment]
    probability = probability_field()


class ReplySerializer(serializers.Serializer):
    """A comment as everyone sees it. `body_html` is the Markdown rendered and sanitized when it was written."""

    id = serializers.IntegerField()
    market = serializers.SlugField(source="market.slug")
    author = serializers.CharField(source="author.username")
    parent = serializers.IntegerField(source="parent_id", allow_null=True)  # type: ignore[assignment]
    body = serializers.CharField(help_text="The Markdown as written.")
    body_html = serializers.CharField(help_text='Sanitized HTML (links carry rel="nofollow ugc").')
    position = PositionHeldSerializer(many=True, help_text="What the author held in the market when writing.")
    forecast = ForecastSerializer(
        many=True,
        allow_null=True,
        help_text="The author's forecast when writing (each outcome's probability after their latest trade), "
        "if attached.",
    )
    reply_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True, help_text="Set once the author edited it.")


class CommentSerializer(ReplySerializer):
    replies = serializers.SerializerMethodField()

    @extend_schema_field(ReplySerializer(many=True))
    def get_replies(self, comment: Comment) -> list[dict[str, Any]]:
        return ReplySerializer(getattr(comment, "visible_replies", []), many=True).data  # type: ignore[return-value]


class MarketCommentsApi(APIView):
    """GET: a market's discussion (public). POST: comment, or reply (signed in; rate-limited per account)."""

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(
            max_length=COMMENT_MAX_CHARS * 2,
            trim_whitespace=False,
            error_messages=BODY_ERRORS,
            help_text=f"Markdown (links, emphasis, lists, quotes, code), 1 to {COMMENT_MAX_CHARS:,} characters.",
        )
        parent = serializers.IntegerField(  # type: ignore[assignment]
            required=False, allow_null=True, min_value=1, help_text="The comment this replies to."
        )
        attach_forecast = serializers.BooleanField(
            required=False, default=False, help_text="Attach your current forecast (after your latest trade)."
        )

    class QuerySerializer(serializers.Serializer):
        ordering = serializers.ChoiceField(choices=list(ORDERINGS), required=False, default="newest")
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)

    OutputSerializer = CommentSerializer

    required_scope = SOCIAL_SCOPES

    def get_permissions(self) -> list[Any]:
        return [HasKeyScope(), IsAuthenticated()] if self.request.method == "POST" else [HasKeyScope()]

    def get_throttles(self) -> list[Any]:
        # Reads meet the read limits; posts the per-account posting limit.
        if self.request.method == "POST":
            return [CommentThrottle()]
        return [AnonReadThrottle(), UserReadThrottle()]

    @extend_schema(
        operation_id="market_comments_list",
        summary="A market's comments, each with its replies",
        parameters=[QuerySerializer],
        responses={200: paginated_schema("PaginatedCommentList", CommentSerializer(many=True))},
        auth=[],
    )
    def get(self, request: Request, slug: str) -> Response:
        market = public_market_or_404(slug)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = paginated_response(
            queryset=market_comments(market=market),
            serializer_class=CommentSerializer,
            request=request,
            view=self,
            ordering=ORDERINGS[query.validated_data["ordering"]],
        )
        return Response(page)

    @extend_schema(
        operation_id="market_comments_create",
        summary="Comment on a market, or reply to a comment",
        request=InputSerializer,
        responses={201: CommentSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        market = public_market_or_404(slug)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        comment = comment_create(
            market=market,
            author=user,
            body=body.validated_data["body"],
            parent_id=body.validated_data.get("parent"),
            attach_forecast=body.validated_data["attach_forecast"],
        )
        comment.visible_replies = []  # type: ignore[attr-defined]
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


def visible_comment_or_404(comment_id: int) -> Comment:
    comment = comment_visible(comment_id=comment_id)
    if comment is None:
        raise NotFound(f"No comment {comment_id}.")
    return comment


class CommentDetailApi(APIView):
    """PATCH: the author edits within the edit window. DELETE: the author deletes. Nobody else may do either."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = SOCIAL_SCOPES

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(
            max_length=COMMENT_MAX_CHARS * 2, trim_whitespace=False, error_messages=BODY_ERRORS
        )

    OutputSerializer = ReplySerializer

    @extend_schema(
        operation_id="comment_update",
        summary="Edit your comment (within the edit window)",
        request=InputSerializer,
        responses={200: ReplySerializer},
    )
    def patch(self, request: Request, comment_id: int) -> Response:
        comment = visible_comment_or_404(comment_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        comment = comment_edit(comment=comment, user=user, body=body.validated_data["body"])
        return Response(ReplySerializer(comment).data)

    @extend_schema(
        operation_id="comment_delete",
        summary="Delete your comment",
        request=None,
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, comment_id: int) -> Response:
        comment = visible_comment_or_404(comment_id)
        user: User = request.user  # type: ignore[assignment]
        comment_delete(comment=comment, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommentReportsApi(APIView):
    """POST: report a comment to the staff's moderation queue (once per user and comment)."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = SOCIAL_SCOPES

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            max_length=REPORT_REASON_MAX_CHARS, required=False, allow_blank=True, default="", trim_whitespace=True
        )

    class OutputSerializer(serializers.Serializer):
        comment = serializers.IntegerField()
        reported = serializers.BooleanField(help_text="False when you had already reported it.")

    @extend_schema(
        operation_id="comment_report",
        summary="Report a comment to the moderators",
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
    )
    def post(self, request: Request, comment_id: int) -> Response:
        comment = visible_comment_or_404(comment_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        created = comment_report(comment=comment, reporter=user, reason=body.validated_data["reason"])
        data = self.OutputSerializer({"comment": comment.pk, "reported": created}).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CommentHideApi(APIView):
    """POST /api/v1/comments/{id}/hide/: staff hide a comment from everyone, as the moderation queue and the admin
    do (markets.services.comments.comment_hide): the comment records who hid it and when, and its open reports
    close as acted on. Hiding a hidden comment again answers the same (200)."""

    permission_classes = [HasKeyScope, IsAdminUser]
    required_scope = Scope.MARKETS

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        market = serializers.SlugField(source="market.slug")
        hidden_at = serializers.DateTimeField()
        hidden_by = serializers.CharField(source="hidden_by.username", allow_null=True, help_text="Who hid it.")

    @extend_schema(
        operation_id="comment_hide",
        summary="Hide a comment from everyone (staff)",
        request=None,
        responses={200: OutputSerializer},
    )
    def post(self, request: Request, comment_id: int) -> Response:
        comment = Comment.objects.filter(pk=comment_id, deleted_at__isnull=True).select_related("market").first()
        if comment is None:
            raise NotFound(f"No comment {comment_id}.")
        user: User = request.user  # type: ignore[assignment]
        comment_hide(comment=comment, staff=user)
        hidden = Comment.objects.select_related("market", "hidden_by").get(pk=comment.pk)
        return Response(self.OutputSerializer(hidden).data)


class MarketFollowApi(APIView):
    """POST follows a market, DELETE unfollows it (trading a market follows it by itself)."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = SOCIAL_SCOPES

    class OutputSerializer(serializers.Serializer):
        market = serializers.SlugField()
        following = serializers.BooleanField()

    def _set(self, request: Request, slug: str, *, following: bool) -> Response:
        market = public_market_or_404(slug)
        user: User = request.user  # type: ignore[assignment]
        market_follow_set(user=user, market=market, following=following)
        data = {"market": market.slug, "following": market_followed(market=market, user=user)}
        return Response(self.OutputSerializer(data).data)

    @extend_schema(
        operation_id="market_follow", summary="Follow a market", request=None, responses={200: OutputSerializer}
    )
    def post(self, request: Request, slug: str) -> Response:
        return self._set(request, slug, following=True)

    @extend_schema(
        operation_id="market_unfollow", summary="Unfollow a market", request=None, responses={200: OutputSerializer}
    )
    def delete(self, request: Request, slug: str) -> Response:
        return self._set(request, slug, following=False)


class MeFeedApi(APIView):
    """GET: new trades and comments of the users you follow, newest first."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = SOCIAL_SCOPES

    class QuerySerializer(serializers.Serializer):
        cursor = serializers.CharField(required=False, max_length=200, help_text="`next` of the previous page.")
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)

    class OutputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            kind = serializers.ChoiceField(choices=["trade", "comment"])
            created_at = serializers.DateTimeField()
            username = serializers.CharField()
            market = serializers.SlugField(source="market_slug")
            question = serializers.CharField(source="market_question")
            trade = TradeOutputSerializer(allow_null=True)
            comment = ReplySerializer(allow_null=True)

        next = serializers.CharField(allow_null=True, help_text="Send as `cursor` for the next page; null on the last.")
        results = ItemSerializer(many=True)

    @extend_schema(
        operation_id="me_feed",
        summary="Trades and comments of the people you follow",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        items, next_cursor = user_feed(
            user=user,
            limit=query.validated_data["page_size"],
            before=query.validated_data.get("cursor"),
            with_outcome_codes=True,
        )
        return Response(self.OutputSerializer({"next": next_cursor, "results": items}).data)
