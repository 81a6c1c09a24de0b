"""Turn a rate limit into a friendly 429 page (or JSON for the API) with Retry-After."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.ratelimit import RateLimited


class RateLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RateLimited):
            return None
        minutes = max(1, round(exception.retry_after / 60))
        response = render(
            request,
            "429.html",
            {"retry_after": exception.retry_after, "minutes": minutes},
            status=429,
        )
        response["Retry-After"] = str(exception.retry_after)
        return response
