from typing import ClassVar

from django.conf import settings
from django.db import models


class Book(models.Model):
    """Stands for a market row: what a trade locks and updates."""

    volume = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    # Spelled out: the type checker runs with Forecastle's settings, where this app is not installed.
    objects: ClassVar[models.Manager["Book"]] = models.Manager()

    def __str__(self) -> str:
        return f"book {self.pk}"


class Fill(models.Model):
    """Stands for the trade row a trade inserts."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    outcome = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    amount = models.DecimalField(max_digits=20, decimal_places=6)
    created_at = models.DateTimeField(auto_now_add=True)
    objects: ClassVar[models.Manager["Fill"]] = models.Manager()

    def __str__(self) -> str:
        return f"fill {self.pk}"
