import os

from django.core.management.base import BaseCommand

from accounts.bootstrap import ADMIN_USERNAME, ensure_admin_user


class Command(BaseCommand):
    help = (
        "Create the 'admin' superuser if there is no superuser yet. The password comes from "
        "DJANGO_SUPERUSER_PASSWORD, else a random one is printed once."
    )

    def handle(self, *args, **options):
        result = ensure_admin_user(os.environ.get("DJANGO_SUPERUSER_PASSWORD"))
        if not result.created:
            return
        if result.generated_password:
            self.stdout.write(
                self.style.WARNING(
                    f"Created superuser '{ADMIN_USERNAME}' with password "
                    f"{result.generated_password}  (shown once; change it in the admin)"
                )
            )
        else:
            self.stdout.write(
                f"Created superuser '{ADMIN_USERNAME}' with the password from "
                "DJANGO_SUPERUSER_PASSWORD"
            )
