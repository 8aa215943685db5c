"""A NUL character in an address is a 400, never a 500 (PostgreSQL text cannot hold it)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/?q=%00", "/?category=a%00b", "/?q%00=1", "/users/a%00b/", "/leaderboard/?metric=%00", "/admin/?q=%00"],
)
def test_pages_answer_400(path):
    response = Client().get(path)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/v1/users/a%00b/", "/api/v1/markets/?search=%00", "/api/v1/markets/x%00/"])
def test_the_api_answers_400_in_its_error_shape(path):
    response = Client().get(path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_staff_admin_search_with_nul_is_400(make_user):
    client = Client()
    client.force_login(make_user("root", is_staff=True))
    assert client.get("/admin/markets/market/?q=%00").status_code == 400


def test_ordinary_unicode_still_passes():
    assert Client().get("/?q=R%C5%ABtte%20%F0%9F%9A%80").status_code == 200
