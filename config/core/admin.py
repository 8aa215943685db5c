"""Admin building blocks shared by the apps.

Money, positions, resolutions and scores are written only by services, so most of the admin only
shows them: these classes take away add, change and delete while keeping view.
"""

from collections.abc import Mapping
from typing import Any

from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """A model staff may look at but never add to, edit or delete from."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Related rows shown on a parent's page, without add, change or delete."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LabelledSplitDateTime(AdminSplitDateTime):
    """The admin's date and time boxes, each with a name a screen reader announces (Django's own two boxes
    carry none: axe-core's "label" rule, critical)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.widgets[0].attrs["aria-label"] = "Date"
        self.widgets[1].attrs["aria-label"] = "Time"


# For a ModelAdmin's formfield_overrides: every date-and-time field gets the labelled boxes.
LABELLED_DATETIME: Mapping[Any, Mapping[str, Any]] = {models.DateTimeField: {"widget": LabelledSplitDateTime}}


class BlankAwareValuesFilter(admin.SimpleListFilter):
    """Django's filter by every value of a text field, with the blank value named "(none)" rather than
    shown as a link with no text. Subclasses set title and parameter_name (the field's name)."""

    BLANK = "-"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        values = (
            model_admin.model._default_manager.order_by(self.parameter_name)
            .values_list(self.parameter_name, flat=True)
            .distinct()
        )
        return [(value or self.BLANK, value or "(none)") for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        field = str(self.parameter_name)
        return queryset.filter(**{field: "" if value == self.BLANK else value})
