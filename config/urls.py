from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Redoc builds its styles at run time (styled-components) and cannot render without inline styles; its
    # search runs in a worker it makes from a blob. Scripts stay 'self' only, and the page shows nothing
    # but the schema, which no user writes.
    path(
        "api/redoc/",
        csp_update({"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema")
        ),
        name="api-redoc",
    ),
    path("accounts/", include("accounts.urls")),
    path("", include("forecast.urls")),
    path("", include("markets.urls")),
]

# Under /api/ these answer in the API's JSON error shape; elsewhere they are Django's own pages.
handler404 = "config.core.api.page_not_found"
handler500 = "config.core.api.server_error"
