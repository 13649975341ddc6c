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
        skip_postgeneration_save = True  # the role hook changes groups, not the user's row

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.LazyFunction(_hashed_default_password)

    @factory.post_generation
    def role(user, create, role, **kwargs):
        """``UserFactory(role="trader")`` or ``"viewer"``; without it the user is in no group."""
        if create and role:
            from accounts.roles import set_role

            set_role(user, role)
