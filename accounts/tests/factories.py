import functools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission

from tradebots.permissions import TRADE_PERMISSION

DEFAULT_PASSWORD = "correct-horse-battery"


@functools.cache
def _hashed_default_password() -> str:
    # Hashing is deliberately slow; once per test run is enough.
    return make_password(DEFAULT_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trader{n}")
    password = factory.LazyFunction(_hashed_default_password)

    @factory.post_generation
    def trader(user, create, extracted, **kwargs):
        """UserFactory(trader=True): a user with the trade permission."""
        if extracted:
            app_label, codename = TRADE_PERMISSION.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
