from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ROLES, VIEWER, set_role_by_username
from accounts.tokens import UnknownUser


class Command(BaseCommand):
    help = (
        "Give a user a role: trader (may change bots, sell and reconcile) or viewer (sees "
        "everything, changes nothing). Superusers are traders whatever their role."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=ROLES)

    def handle(self, *args, username, role, **options):
        try:
            user = set_role_by_username(username, role)
        except UnknownUser as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{username} is now a {role}.")
        if user.is_superuser and role == VIEWER:
            self.stderr.write(f"{username} is a superuser, so it can trade whatever its role.")
