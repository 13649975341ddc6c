import functools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

DEFAULT_PASSWORD = "correct-horse-battery"


@functools.cache
def _hashed_default_password() -> str:
    # Hashing is deliberately slow; once per test run is enough.
    return make_password(DEFAULT_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"trader{n}")
    password = factory.LazyFunction(_hashed_default_password)
