"""An open WebSocket ends with the session it was opened in.

Every socket joins its user's group (``user_group``). Logging out tells that session's sockets
to close; any other change to the user (deactivated, deleted, password changed, which changes
the session hash) tells all its sockets to check their session again, as a new request would,
and to close when it is no longer valid. A socket also checks once more right after joining the
group, so a change made while it was connecting is not missed.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model, user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

# An application close code (4000-4999): htmx's ws extension does not reconnect after it.
SESSION_ENDED_CLOSE_CODE = 4401
SESSION_ENDED = "session.ended"
SESSION_CHECK = "session.check"


def user_group(user_id) -> str:
    return f"user-{user_id}"


def _tell_sockets(user_id, message: dict) -> None:
    """Sent after the transaction commits, so a socket checking its session sees the change.
    A failure is logged: the socket's next check (or the next request) still refuses."""

    def send():
        try:
            async_to_sync(get_channel_layer().group_send)(user_group(user_id), message)
        except Exception:
            logger.exception("Could not tell user %s's open pages their session changed", user_id)

    transaction.on_commit(send)


def logged_out(sender, request, user, **kwargs):
    session_key = request.session.session_key if request is not None else None
    if user is not None and session_key:
        _tell_sockets(user.pk, {"type": SESSION_ENDED, "session_key": session_key})


def user_changed(sender, instance, created=False, update_fields=None, **kwargs):
    # Logging in saves last_login only: nothing a session depends on.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    _tell_sockets(instance.pk, {"type": SESSION_CHECK})


def connect():
    user_model = get_user_model()
    user_logged_out.connect(logged_out, dispatch_uid="socket-sessions-logged-out")
    post_save.connect(user_changed, sender=user_model, dispatch_uid="socket-sessions-user-saved")
    post_delete.connect(
        user_changed, sender=user_model, dispatch_uid="socket-sessions-user-deleted"
    )
