from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import UnknownUser, create_api_token


class Command(BaseCommand):
    help = "Create an API bearer token for a user and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to tell tokens apart.")

    def handle(self, *args, username, name, **options):
        try:
            raw_token = create_api_token(username, name=name)
        except UnknownUser as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw_token)
        self.stderr.write("Store it now: only its hash is kept, it cannot be shown again.")
