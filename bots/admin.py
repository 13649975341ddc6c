from django.contrib import admin, messages

from . import services
from .models import Bot, BotStatusChange


class BotStatusChangeInline(admin.TabularInline):
    model = BotStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "from_status", "to_status", "actor", "reason")

    def has_add_permission(self, request, obj=None):
        return False


def _lifecycle_action(service, verb: str):
    def action(modeladmin, request, queryset):
        done = 0
        for bot in queryset:
            try:
                service(bot, request.user.get_username())
                done += 1
            except services.BotError as error:
                modeladmin.message_user(request, error.message, messages.WARNING)
        modeladmin.message_user(request, f"{done} bot(s) {verb}.")

    action.__name__ = f"{verb}_bots"
    action.short_description = f"{verb.capitalize()} selected bots"
    return action


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = ("name", "symbol", "status", "capital", "timeframe", "updated_at")
    list_filter = ("status", "symbol", "timeframe")
    search_fields = ("name", "symbol", "id")
    # Status and capital change only through the services, which log and check them.
    readonly_fields = ("id", "status", "last_error", "capital", "created_at", "updated_at")
    inlines = [BotStatusChangeInline]
    actions = [
        _lifecycle_action(services.pause_bot, "paused"),
        _lifecycle_action(services.stop_bot, "stopped"),
    ]

    def has_add_permission(self, request):
        # New bots need the capital check: the Bots page and the API do it.
        return False
