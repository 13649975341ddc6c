from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.urls import reverse

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


def delete_selected_bots(modeladmin, request, queryset):
    """Django's confirmation page, but the deletion goes through the service: all or nothing,
    and a refusal is an error message, never "Successfully deleted"."""
    refusals = services.deletion_refusals(queryset)
    if refusals:
        modeladmin.message_user(
            request, " ".join(refusals) + " Nothing was deleted.", messages.ERROR
        )
        return None
    if not request.POST.get("post"):
        return delete_selected(modeladmin, request, queryset)
    bots = list(queryset)
    try:
        deleted = services.delete_bots(bots, request.user.get_username())
    except services.BotError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)
        return None
    modeladmin._log_deleted(request, bots)
    modeladmin.message_user(request, f"Deleted {deleted} bot(s).", messages.SUCCESS)
    return None


delete_selected_bots.short_description = "Delete selected bots"
delete_selected_bots.allowed_permissions = ("delete",)


class BotAdminForm(forms.ModelForm):
    class Meta:
        model = Bot
        fields = (
            "name", "symbol", "timeframe", "strategy", "stop_loss_pct", "take_profit_pct",
            "allow_fractional",
        )  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            return cleaned
        # The same checks as the pages and the API (symbol known, symbol and timeframe fixed
        # while the bot is exposed); the service repeats them under the lock when saving.
        changed = {name: cleaned[name] for name in self.changed_data if name in cleaned}
        for field, message in services.validate_bot_fields(changed, bot=self.instance).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    form = BotAdminForm
    list_display = ("name", "symbol", "status", "capital", "timeframe", "updated_at")
    list_filter = ("status", "symbol", "timeframe")
    search_fields = ("name", "symbol", "id")
    # Status and capital change only through the services, which log and check them.
    readonly_fields = ("id", "status", "last_error", "capital", "created_at", "updated_at")
    inlines = [BotStatusChangeInline]
    actions = [
        _lifecycle_action(services.pause_bot, "paused"),
        _lifecycle_action(services.stop_bot, "stopped"),
        delete_selected_bots,
    ]

    def has_add_permission(self, request):
        # New bots need the capital check: the Bots page and the API do it.
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by delete_selected_bots
        return actions

    # --- change: through services.update_bot --------------------------------------------------

    def save_model(self, request, obj, form, change):
        # The form copied the new values onto obj, and Bot.clean() normalised them through the
        # bot schema; the service compares with the stored bot, so it gets the stored one.
        changed = {name: getattr(obj, name) for name in form.changed_data}
        stored = Bot.objects.get(pk=obj.pk)
        try:
            services.update_bot(stored, changed, request.user.get_username())
        except services.BotError as error:
            # Only when the bot changed between the form's check and the save (a race).
            request._bot_refused = error.message

    def log_change(self, request, obj, message):
        if not getattr(request, "_bot_refused", None):
            return super().log_change(request, obj, message)
        return None

    def response_change(self, request, obj):
        refused = getattr(request, "_bot_refused", None)
        if refused:
            self.message_user(request, f"{refused} Nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    # --- delete: through services.delete_bot --------------------------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        bot = self.get_object(request, unquote(object_id))
        if bot is not None and self.has_delete_permission(request, bot):
            refusal = services.deletion_refusal(bot)
            if refusal:
                # No confirmation page: it would offer a deletion the service will refuse.
                self.message_user(request, refusal, messages.ERROR)
                return HttpResponseRedirect(
                    reverse(
                        "admin:bots_bot_change", args=[bot.pk], current_app=self.admin_site.name
                    )
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        try:
            services.delete_bot(obj, request.user.get_username())
        except services.BotError as error:
            # Only when the bot changed after delete_view's check (a race).
            request._bot_refused = error.message
        else:
            self._log_deleted(request, [obj])

    def log_deletions(self, request, queryset):
        # Django logs before deleting; a refused deletion must leave no "deleted" entry, so
        # delete_model and delete_selected_bots log once the service has deleted.
        return None

    def _log_deleted(self, request, bots):
        super().log_deletions(request, bots)

    def response_delete(self, request, obj_display, obj_id):
        refused = getattr(request, "_bot_refused", None)
        if refused:
            self.message_user(request, refused, messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:bots_bot_change", args=[obj_id], current_app=self.admin_site.name)
            )
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request, queryset):
        # Only reached if something calls Django's own bulk delete: still all or nothing.
        services.delete_bots(list(queryset), request.user.get_username())
