"""Request guards that apply to every page and endpoint."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render

from config.core.api import API_PREFIX, error_body

NUL = "\x00"


class RejectNulCharactersMiddleware:
    """A 400 for a NUL character in the path or the query string.

    PostgreSQL text cannot hold NUL, so one reaching a query (a search box, a category filter, a username
    in the URL) was a 500. Forms and serializers refuse it in bodies; paths and query strings are read by
    hand in many views, so they are checked once here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path or any(
            NUL in key or any(NUL in value for value in values) for key, values in request.GET.lists()
        ):
            message = "Null characters are not allowed in the address."
            if request.path.startswith(API_PREFIX):
                return JsonResponse(error_body("invalid", message), status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class RejectOversizedBodyMiddleware:
    """A 413 for a request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE, before anything reads it.

    Django refuses such a body only when a view reads it (RequestDataTooBig), which the API answered as a
    500 and the website as a bare 400. The declared Content-Length is enough to refuse it here; a body
    without one that grows past the limit is still caught when read (config.core.api maps it to a 413).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return payload_too_large(request)
        return self.get_response(request)


def payload_too_large(request: HttpRequest) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"The request body is too large: at most {limit:,} bytes are accepted."
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("payload_too_large", message), status=413)
    return render(request, "413.html", {"message": message}, status=413)
