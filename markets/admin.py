from django.contrib import admin

from markets.models import Market, Outcome, Trade


class OutcomeInline(admin.TabularInline):
    model = Outcome
    extra = 0
    fields = ("index", "code", "label", "initial_probability", "probability", "shares_outstanding")
    readonly_fields = ("initial_probability", "probability", "shares_outstanding")

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ("question", "slug", "kind", "category", "status", "volume", "closes_at", "created_at")
    list_filter = ("status", "kind", "category")
    search_fields = ("question", "slug", "description")
    date_hierarchy = "closes_at"
    readonly_fields = ("escrow", "subsidy", "volume", "status", "opens_at", "closed_at", "resolved_at", "created_by")
    inlines = [OutcomeInline]


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "market", "user", "side", "outcome", "shares", "amount")
    list_filter = ("side", "market__status")
    search_fields = ("market__question", "market__slug", "user__username")
    list_select_related = ("market", "user", "outcome")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Trade._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
