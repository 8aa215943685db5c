"""Account endpoints: who am I (me/), and API keys from a password (auth/token/)."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication
from accounts.models import User
from accounts.money import CREDIT_PLACES, MAX_DIGITS
from accounts.selectors import user_balance
from accounts.services import api_key_create
from config.core.api import TokenThrottle


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        balance = serializers.DecimalField(
            max_digits=MAX_DIGITS, decimal_places=CREDIT_PLACES, help_text="Credits in your wallet."
        )
        date_joined = serializers.DateTimeField()

    @extend_schema(operation_id="me_retrieve", summary="Your account and balance", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        user: User = request.user  # type: ignore[assignment]
        data = self.OutputSerializer(
            {"username": user.username, "balance": user_balance(user=user), "date_joined": user.date_joined}
        ).data
        return Response(data)


class TokenCreateApi(APIView):
    # Only the API key scheme: a token request never needs (or should ride on) a browser session.
    authentication_classes = [ApiKeyAuthentication]
    throttle_classes = [TokenThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
        name = serializers.CharField(
            max_length=100, required=False, default="API key", help_text="A label to recognise the key by."
        )

    class OutputSerializer(serializers.Serializer):
        key = serializers.CharField(help_text="Send as 'Authorization: Token <key>'. Shown only this once.")
        name = serializers.CharField()
        prefix = serializers.CharField(help_text="The key's first characters, to recognise it later.")
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
        api_key, raw_key = api_key_create(user=user, name=body.validated_data["name"])
        data = self.OutputSerializer(
            {"key": raw_key, "name": api_key.name, "prefix": api_key.prefix, "created_at": api_key.created_at}
        ).data
        return Response(data, status=status.HTTP_201_CREATED)
