"""Account endpoints: who am I (me/), API keys from a password (auth/token/), following users
(users/{username}/follow/) and your notifications (me/notifications/)."""

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication
from accounts.models import Notification, Scope, User
from accounts.money import CREDIT_PLACES, MAX_DIGITS
from accounts.notifications import notification_unread_count, notifications_mark_read, user_notifications
from accounts.permissions import HasKeyScope
from accounts.selectors import user_balance, user_reserved
from accounts.services import api_key_create, user_follow, user_unfollow
from config.core.api import NO_SCOPE, PAGINATION_PARAMETERS_HELP, TokenThrottle, paginated_response


class MeApi(APIView):
    permission_classes = [HasKeyScope, IsAuthenticated]
    required_scope = Scope.READ

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        balance = serializers.DecimalField(
            max_digits=MAX_DIGITS, decimal_places=CREDIT_PLACES, help_text="Credits in your wallet."
        )
        available = serializers.DecimalField(
            max_digits=MAX_DIGITS,
            decimal_places=CREDIT_PLACES,
            help_text="Credits you can spend now: your wallet (the same as balance).",
        )
        reserved = serializers.DecimalField(
            max_digits=MAX_DIGITS,
            decimal_places=CREDIT_PLACES,
            help_text="Credits your open buy orders hold back; released when they fill, are cancelled or expire.",
        )
        date_joined = serializers.DateTimeField()

    @extend_schema(operation_id="me_retrieve", summary="Your account and balance", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        user: User = request.user  # type: ignore[assignment]
        balance = user_balance(user=user)
        data = self.OutputSerializer(
            {
                "username": user.username,
                "balance": balance,
                "available": balance,
                "reserved": user_reserved(user=user),
                "date_joined": user.date_joined,
            }
        ).data
        return Response(data)


class TokenCreateApi(APIView):
    # Only the API key scheme: a token request never needs (or should ride on) a browser session.
    authentication_classes = [ApiKeyAuthentication]
    throttle_classes = [TokenThrottle]
    # The password proves who asks; a key sent along (of any scope) neither helps nor hinders.
    required_scope = {"POST": NO_SCOPE}

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
        name = serializers.CharField(
            max_length=100, required=False, default="API key", help_text="A label to recognise the key by."
        )
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=Scope.choices),
            required=False,
            allow_empty=False,
            max_length=len(Scope.choices),
            help_text=(
                "What the key may do: read, trade, and for staff accounts markets and resolve. "
                "Default: every scope the account may hold."
            ),
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="ISO 8601; after it the key stops working. Default: never."
        )

    class OutputSerializer(serializers.Serializer):
        key = serializers.CharField(help_text="Send as 'Authorization: Token <key>'. Shown only this once.")
        name = serializers.CharField()
        prefix = serializers.CharField(help_text="The key's first characters, to recognise it later.")
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))
        expires_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="auth_token_create",
        summary="Exchange a username and password for a new API key",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            401: OpenApiResponse(description="Wrong username or password."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request._request, username=body.validated_data["username"], password=body.validated_data["password"]
        )
        if user is None or not user.is_active:
            raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
        api_key, raw_key = api_key_create(
            user=user,
            name=body.validated_data["name"],
            scopes=body.validated_data.get("scopes"),
            expires_at=body.validated_data.get("expires_at"),
        )
        data = self.OutputSerializer(
            {
                "key": raw_key,
                "name": api_key.name,
                "prefix": api_key.prefix,
                "scopes": api_key.scopes,
                "expires_at": api_key.expires_at,
                "created_at": api_key.created_at,
            }
        ).data
        return Response(data, status=status.HTTP_201_CREATED)


def user_or_404(username: str) -> User:
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No user {username!r}.")
    return user


class UserFollowApi(APIView):
    """POST follows a user (their trades and comments reach your feed), DELETE unfollows them."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    # Reading needs `read`; following and marking notifications read act for the account: `trade`.
    required_scope = {"GET": Scope.READ, "POST": Scope.TRADE, "DELETE": Scope.TRADE}

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        following = serializers.BooleanField()

    @extend_schema(operation_id="user_follow", summary="Follow a user", request=None, responses={200: OutputSerializer})
    def post(self, request: Request, username: str) -> Response:
        followed = user_or_404(username)
        user_follow(follower=request.user, followed=followed)  # type: ignore[arg-type]
        return Response(self.OutputSerializer({"username": followed.username, "following": True}).data)

    @extend_schema(
        operation_id="user_unfollow", summary="Unfollow a user", request=None, responses={200: OutputSerializer}
    )
    def delete(self, request: Request, username: str) -> Response:
        followed = user_or_404(username)
        user_unfollow(follower=request.user, followed=followed)  # type: ignore[arg-type]
        return Response(self.OutputSerializer({"username": followed.username, "following": False}).data)


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Notification.Kind.choices)
    text = serializers.CharField(help_text="What happened, in a sentence.")
    link = serializers.CharField(help_text="Where to read more on the site (a path).")
    payload = serializers.DictField(help_text="The event's details (e.g. market, paid).")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class MeNotificationsApi(APIView):
    """GET: your notifications, newest first, with the unread count."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    # Reading needs `read`; following and marking notifications read act for the account: `trade`.
    required_scope = {"GET": Scope.READ, "POST": Scope.TRADE, "DELETE": Scope.TRADE}

    class QuerySerializer(serializers.Serializer):
        unread = serializers.BooleanField(required=False, default=False, help_text="Only the unread ones.")
        cursor = serializers.CharField(required=False, max_length=200, help_text=PAGINATION_PARAMETERS_HELP)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)

    @extend_schema(
        operation_id="me_notifications",
        summary="Your notifications, newest first",
        parameters=[QuerySerializer],
        responses={
            200: inline_serializer(
                name="PaginatedNotificationList",
                fields={
                    "unread_count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": NotificationSerializer(many=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        notifications = user_notifications(user=user)
        if query.validated_data["unread"]:
            notifications = notifications.filter(read_at__isnull=True)
        page = paginated_response(
            queryset=notifications,
            serializer_class=NotificationSerializer,
            request=request,
            view=self,
            ordering=("-id",),
        )
        return Response({"unread_count": notification_unread_count(user_id=user.pk), **page})


class MeNotificationsReadApi(APIView):
    """POST: mark notifications read: the ones listed in `ids`, or all of them with `all: true`."""

    permission_classes = [HasKeyScope, IsAuthenticated]
    # Reading needs `read`; following and marking notifications read act for the account: `trade`.
    required_scope = {"GET": Scope.READ, "POST": Scope.TRADE, "DELETE": Scope.TRADE}

    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1), required=False, max_length=1000, allow_empty=False
        )
        all = serializers.BooleanField(required=False, default=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs.get("ids") and not attrs["all"]:
                raise serializers.ValidationError({"ids": ["Give the ids to mark read, or all: true."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        marked = serializers.IntegerField(help_text="How many were unread and are now read.")
        unread_count = serializers.IntegerField()

    @extend_schema(
        operation_id="me_notifications_read",
        summary="Mark notifications read (some, or all)",
        request=InputSerializer,
        responses={200: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        ids = None if body.validated_data["all"] else body.validated_data["ids"]
        marked = notifications_mark_read(user=user, ids=ids)
        data = {"marked": marked, "unread_count": notification_unread_count(user_id=user.pk)}
        return Response(self.OutputSerializer(data).data)
