"""The live stream's entry in the API schema. The stream itself is served by the ASGI process
(markets/stream/server.py under uvicorn), never by gunicorn: a stream would hold a web worker's thread
for as long as it is open. This view documents it, and answers a request that reached the WSGI tier
anyway (a proxy that does not route /api/v1/stream/ to the stream process) with a 421 saying so.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.core.api import ErrorSerializer, error_body

STREAM_DESCRIPTION = """Server-Sent Events (`text/event-stream`) of the named markets, or of every market.

Events, each with an `id` (`<milliseconds>-<sequence>`) and JSON `data`:

- `trade`: a trade, with the fields of the public trade list (`id`, `market`, `outcome`, `side`, `shares`,
  `amount`, `average_price`, `probabilities_before`, `probabilities_after`, `username`, `created_at`,
  `voided_at`) and `fill`: true when it filled a resting limit order of `username` on someone else's trade;
- `price`: a market's probabilities after a change (`market`, `version`, `probabilities` by outcome code,
  `volume`, `updated_at`); `version` grows with every change, so an older one can be ignored. A trade sends
  its `trade` event, one for each resting order it filled, in order, then one `price` event;
- `status`: a market's status after a change of it (`market`, `status`, `at`): `open`, `closed`,
  `resolving`, `resolved`, `annulled`, and any status added later;
- `reset` (no id): events after the `Last-Event-ID` sent are no longer kept; read the state again.

Reconnect with `Last-Event-ID` (browsers do) to receive every event missed while disconnected (kept for an
hour, up to 10,000 events, by default). A comment line (`: heartbeat`) comes every 15 seconds when no
event does. Anonymous; at most 20 open streams per client address (429 beyond). Served by the stream
process: a web process answers 421."""


class StreamApi(APIView):
    @extend_schema(
        operation_id="stream",
        summary="Live prices, trades and status changes (Server-Sent Events)",
        description=STREAM_DESCRIPTION,
        parameters=[
            OpenApiParameter(
                "markets",
                str,
                OpenApiParameter.QUERY,
                description="Slugs of the markets to follow, separated by commas (at most 50); every market when "
                "left out. An unknown slug is a 400.",
            ),
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                description="The id of the last event received: the stream starts with the events after it.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="The event stream."),
            421: OpenApiResponse(ErrorSerializer, description="A web process, not the stream process, got this."),
            503: OpenApiResponse(ErrorSerializer, description="The stream's Redis is unreachable."),
        },
    )
    def get(self, request: Request) -> Response:
        body = error_body(
            "stream_not_routed",
            "The stream is served by the stream process (uvicorn config.stream_asgi): route /api/v1/stream/ to it.",
        )
        return Response(body, status=421)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # A browser asks for text/event-stream: answer it in JSON all the same, never a 406.
        return super().perform_content_negotiation(request, force=True)
