import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import ApiToken
from accounts.tokens import hash_token, user_for_token

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_a_working_token_and_stores_only_its_hash(user, capsys):
    call_command("create_api_token", user.username, "--name", "laptop")
    printed = capsys.readouterr().out.strip()

    stored = ApiToken.objects.get(user=user)
    assert stored.name == "laptop"
    assert stored.token_hash == hash_token(printed)
    assert printed not in (stored.token_hash, stored.prefix)
    assert user_for_token(printed) == user


def test_create_api_token_for_unknown_user_fails_with_one_line():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")

    assert not ApiToken.objects.exists()


def test_ensure_admin_uses_the_password_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "from-the-env-123")

    call_command("ensure_admin")

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password("from-the-env-123")
    assert "from-the-env-123" not in capsys.readouterr().out


def test_ensure_admin_prints_a_generated_password_once(monkeypatch, capsys):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)

    call_command("ensure_admin")
    first = capsys.readouterr().out
    call_command("ensure_admin")
    second = capsys.readouterr().out

    password = first.split("with password ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert second == ""
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
