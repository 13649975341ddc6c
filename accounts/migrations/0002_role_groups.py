"""The two roles' groups: Traders (with bots.trade) and Viewers (no permission)."""

from django.db import migrations

TRADE_PERMISSION_NAME = "Can trade: change bots, sell positions, reconcile"


def create_role_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # Permissions are normally created after all migrations have run (post_migrate), so on a new
    # database this one does not exist yet; creating it here is what post_migrate would do.
    bot_type, _ = ContentType.objects.get_or_create(app_label="bots", model="bot")
    trade, _ = Permission.objects.get_or_create(
        content_type=bot_type, codename="trade", defaults={"name": TRADE_PERMISSION_NAME}
    )
    traders, _ = Group.objects.get_or_create(name="Traders")
    traders.permissions.add(trade)
    Group.objects.get_or_create(name="Viewers")


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Traders", "Viewers"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("bots", "0003_trade_permission"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
