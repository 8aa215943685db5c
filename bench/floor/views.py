"""The two floor requests: a trade (token auth, one transaction that locks a row, updates it and inserts one)
and a cached read (one Redis GET of bytes rendered beforehand)."""

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpResponse
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor.models import Book, Fill

READ_KEY = "read"


class TradeApi(APIView):
    class InputSerializer(serializers.Serializer):
        outcome = serializers.CharField(max_length=32)
        side = serializers.ChoiceField(choices=["buy", "sell"])
        amount = serializers.DecimalField(max_digits=16, decimal_places=6)

    def post(self, request: Request, book_id: int) -> Response:
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        amount = body.validated_data["amount"]
        with transaction.atomic():
            Book.objects.select_for_update().filter(pk=book_id).values_list("pk", flat=True).get()
            Book.objects.filter(pk=book_id).update(volume=F("volume") + amount)
            fill = Fill.objects.create(
                book_id=book_id,
                user=request.user,
                outcome=body.validated_data["outcome"],
                side=body.validated_data["side"],
                amount=amount,
            )
        return Response(
            {"id": fill.pk, "outcome": fill.outcome, "side": fill.side, "amount": str(amount)},
            status=status.HTTP_201_CREATED,
        )


class ReadApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request: Request, name: str = "") -> HttpResponse:
        # /read/ serves a copy of Forecastle's market detail; /read/<name>/ a copy of another of its reads (the list,
        # the history), so that a read is compared with a floor that sends as many bytes.
        body = cache.get(f"{READ_KEY}:{name}" if name else READ_KEY)
        if body is None:
            return HttpResponse(status=status.HTTP_404_NOT_FOUND)
        return HttpResponse(body, content_type="application/json")
