from django.urls import path

from bench.floor.views import ReadApi, TradeApi

urlpatterns = [
    path("trade/<int:book_id>/", TradeApi.as_view()),
    path("read/", ReadApi.as_view()),
    path("read/<slug:name>/", ReadApi.as_view()),
]
