from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.http import HttpRequest

from accounts.models import Account, ApiKey, LedgerEntry, LedgerTransaction, Notification, User
from accounts.services import user_password_changed
from config.core.admin import LABELLED_DATETIME, ReadOnlyAdmin, ReadOnlyInline


class PasswordSetByStaffForm(AdminPasswordChangeForm):
    """A password set by staff is a new password like any other: the account's API keys are revoked."""

    def save(self, commit: bool = True) -> Any:
        user = super().save(commit=commit)
        if commit:
            user_password_changed(user=user)
        return user


@admin.register(User)
class ForecastleUserAdmin(UserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "date_joined")
    change_password_form = PasswordSetByStaffForm
    formfield_overrides = LABELLED_DATETIME
    # Plain multiple selects: Django's two-box picker puts aria-label on a bare <span> (axe-core, serious).
    filter_horizontal = ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Every user has a wallet in the ledger, which protects them: deactivate (is_active) instead."""
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("key", "kind", "user", "balance", "created_at")
    list_filter = ("kind",)
    search_fields = ("key", "user__username")


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    """The ledger is append-only: staff read it here, services write it."""

    list_display = ("id", "kind", "memo", "reference", "created_at")
    list_filter = ("kind",)
    search_fields = ("memo", "reference", "entries__account__key")
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "hashed_key", "created_at", "last_used_at")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "recipient", "kind", "event_key", "created_at", "read_at", "email")
    list_filter = ("kind", "email")
    search_fields = ("recipient__username", "event_key")
    list_select_related = ("recipient",)
