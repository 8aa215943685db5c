"""Request guards that apply to every page and endpoint."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

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
