"""Notifications: writing them exactly once, reading and marking them, and mailing them.

Generic: the app where an event happens (markets) says who hears of it with SQL over its own tables and
hands that to `notifications_fan_out`, which writes every row in one INSERT ... SELECT. A retried or
duplicated fan-out adds nothing: UNIQUE (event_key, recipient) and ON CONFLICT DO NOTHING.

E-mail: when a row is written, the recipient's preference for its kind decides its `email` state
(immediate, digest or none; none too without an address). `notifications_email_send` mails the immediate
ones (a Celery task, enqueued after each fan-out and swept every minute), `notifications_digest_send` the
digest ones once a day (beat). Every mail carries a one-click unsubscribe link, a signed token that needs
no login.
"""

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Notification, NotificationPreference, User
from config.core.errors import InvalidInput

logger = logging.getLogger(__name__)

Kind = Notification.Kind
Delivery = NotificationPreference.Delivery

# A kind without a preference row: what matters at once is mailed at once, the rest waits for the digest.
DEFAULT_DELIVERY: dict[str, str] = {
    Kind.MARKET_RESOLVED: Delivery.IMMEDIATELY,
    Kind.RESOLUTION_PROPOSED: Delivery.IMMEDIATELY,
    Kind.MARKET_CLOSING: Delivery.DIGEST,
    Kind.MARKET_MOVED: Delivery.DIGEST,
    Kind.COMMENT_REPLY: Delivery.IMMEDIATELY,
    Kind.MENTION: Delivery.IMMEDIATELY,
}
UNSUBSCRIBE_SALT = "accounts.notifications.unsubscribe"
ALL_KINDS = "all"
# Mails claimed and sent per transaction.
EMAIL_BATCH = 200

# Table names are the models' own, never input.
NOTIFICATION = Notification._meta.db_table
PREFERENCE = NotificationPreference._meta.db_table
USER = User._meta.db_table

# The e-mail state of a new row, from the recipient's address and preference (p) or the kind's default.
EMAIL_STATE_SQL = """
    CASE WHEN u.email = '' THEN 'none'
         ELSE CASE COALESCE(p.delivery, %(default_delivery)s)
              WHEN 'immediately' THEN 'immediate' WHEN 'digest' THEN 'digest' ELSE 'none' END
    END
"""


def notifications_fan_out(
    *,
    kind: str,
    event_key: str,
    recipients_sql: str,
    params: dict[str, Any],
    payload_sql: str,
    link: str,
    now: datetime | None = None,
) -> int:
    """Writes one notification of `event_key` for every row of `recipients_sql` (a SELECT with a `user_id`
    column, read as `r`), in one statement; returns how many were new. `payload_sql` is a jsonb expression
    over `r` (it must hold "text", the sentence shown). Inactive users are skipped. Exactly once per event
    and recipient, however often it runs."""
    if kind not in DEFAULT_DELIVERY:
        raise ValueError(f"unknown notification kind {kind!r}")
    sql = f"""
        INSERT INTO {NOTIFICATION} (recipient_id, kind, event_key, payload, link, created_at, email)
        SELECT r.user_id, %(kind)s, %(event_key)s, {payload_sql}, %(link)s, %(now)s, {EMAIL_STATE_SQL}
        FROM ({recipients_sql}) r
        JOIN {USER} u ON u.id = r.user_id AND u.is_active
        LEFT JOIN {PREFERENCE} p ON p.user_id = r.user_id AND p.kind = %(kind)s
        ON CONFLICT (event_key, recipient_id) DO NOTHING
    """  # noqa: S608
    values = {
        **params,
        "kind": kind,
        "event_key": event_key,
        "link": link,
        "now": now or timezone.now(),
        "default_delivery": DEFAULT_DELIVERY[kind],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount


def notification_send(
    *, kind: str, event_key: str, recipient_ids: Iterable[int], text: str, link: str, now: datetime | None = None
) -> int:
    """A notification for a few named users (a reply, a mention): the same exactly-once insert."""
    ids = sorted(set(recipient_ids))
    if not ids:
        return 0
    return notifications_fan_out(
        kind=kind,
        event_key=event_key,
        recipients_sql="SELECT unnest(%(ids)s::bigint[]) AS user_id",
        params={"ids": ids, "text": text},
        payload_sql="jsonb_build_object('text', %(text)s::text)",
        link=link,
        now=now,
    )


# Reads ------------------------------------------------------------------------------------------------


def notification_unread_count(*, user_id: int) -> int:
    """The bell: one count on the partial index of unread rows."""
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def user_notifications(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user).order_by("-id")


def notification_preferences(*, user: User) -> dict[str, str]:
    """Every kind's delivery for `user`: their choice, or the kind's default."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "delivery"))
    return {kind: chosen.get(kind, default) for kind, default in DEFAULT_DELIVERY.items()}


# Writes -----------------------------------------------------------------------------------------------


def notifications_mark_read(*, user: User, ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
    """Marks `ids` (all when None) of `user`'s unread notifications read; others' ids are ignored."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=now or timezone.now())


def notification_preference_set(*, user: User, kind: str, delivery: str) -> None:
    """Sets how `kind` reaches `user` by e-mail ("all" sets every kind). Turning mail off also drops what was
    waiting to be mailed; immediate or digest apply to what comes next."""
    kinds = list(DEFAULT_DELIVERY) if kind == ALL_KINDS else [kind]
    if any(k not in DEFAULT_DELIVERY for k in kinds):
        raise InvalidInput(f"Unknown notification kind {kind!r}.", field="kind")
    if delivery not in Delivery.values:
        raise InvalidInput(f"Unknown delivery {delivery!r}.", field="delivery")
    with transaction.atomic():
        for each in kinds:
            NotificationPreference.objects.update_or_create(user=user, kind=each, defaults={"delivery": delivery})
        if delivery == Delivery.OFF:
            Notification.objects.filter(
                recipient=user, kind__in=kinds, email__in=[Notification.Email.IMMEDIATE, Notification.Email.DIGEST]
            ).update(email=Notification.Email.NONE)


# Unsubscribe tokens -------------------------------------------------------------------------------------


def unsubscribe_token(*, user_id: int, kind: str) -> str:
    """A signed, unexpiring token that turns `kind` (or "all") off for the user, with no login."""
    return signing.dumps({"u": user_id, "k": kind}, salt=UNSUBSCRIBE_SALT, compress=True)


@dataclass(frozen=True)
class Unsubscribe:
    user: User
    kind: str


def unsubscribe_token_read(token: str) -> Unsubscribe | None:
    """Whose token and which kind; None when it is forged, mangled or names nobody."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    kind = data.get("k")
    if kind != ALL_KINDS and kind not in DEFAULT_DELIVERY:
        return None
    user = User.objects.filter(pk=data["u"], is_active=True).first()
    return Unsubscribe(user=user, kind=str(kind)) if user is not None else None


def unsubscribe_apply(*, token: str) -> Unsubscribe | None:
    found = unsubscribe_token_read(token)
    if found is not None:
        notification_preference_set(user=found.user, kind=found.kind, delivery=Delivery.OFF)
    return found


# Mail -------------------------------------------------------------------------------------------------


def site_url(path: str) -> str:
    return settings.FORECASTLE_SITE_URL.rstrip("/") + path


def _message(*, to: str, user_id: int, kind: str, subject: str, lines: list[str]) -> EmailMessage:
    unsubscribe = site_url(f"/accounts/notifications/unsubscribe/{unsubscribe_token(user_id=user_id, kind=kind)}/")
    what = "these e-mails" if kind == ALL_KINDS else f"e-mails like this one ({Kind(kind).label.lower()})"
    body = "\n".join(
        [
            *lines,
            "",
            f"Your notifications: {site_url('/accounts/notifications/')}",
            f"Stop {what} with one click: {unsubscribe}",
        ]
    )
    return EmailMessage(
        subject=subject[:150],
        body=body,
        to=[to],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            # RFC 8058: a mail client may unsubscribe with one POST, no page and no login.
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def _text(payload: object) -> str:
    """The sentence of a payload read with a raw cursor (Django hands jsonb over as text there)."""
    if isinstance(payload, str):
        payload = json.loads(payload)
    return str(payload.get("text", "")) if isinstance(payload, dict) else ""


def _line(text: str, link: str) -> str:
    return f"{text}\n  {site_url(link)}" if link else text


def notifications_email_send(*, batch: int = EMAIL_BATCH) -> int:
    """Mails every notification waiting to be mailed at once; returns how many were sent. Each batch is
    claimed (FOR UPDATE SKIP LOCKED, so workers share the work) and marked sent in the transaction that
    sends it: a failed send rolls the batch back to be tried again."""
    sent = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""UPDATE {NOTIFICATION} n SET email = 'sent'
                        FROM {USER} u
                        WHERE n.id IN (
                            SELECT id FROM {NOTIFICATION} WHERE email = 'immediate'
                            ORDER BY id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
                        ) AND u.id = n.recipient_id
                        RETURNING n.recipient_id, u.email, n.kind, n.payload, n.link""",  # noqa: S608
                    {"batch": batch},
                )
                rows = cursor.fetchall()
            if not rows:
                return sent
            messages = []
            for user_id, address, kind, payload, link in rows:
                text = _text(payload)
                messages.append(
                    _message(to=address, user_id=user_id, kind=kind, subject=text, lines=[_line(text, link)])
                )
            get_connection(fail_silently=False).send_messages(messages)
            sent += len(messages)


def notifications_digest_send(*, now: datetime | None = None) -> int:
    """One mail per user with every notification waiting for the digest; returns how many mails went."""
    now = now or timezone.now()
    mails = 0
    recipients = list(
        Notification.objects.filter(email=Notification.Email.DIGEST)
        .order_by("recipient_id")
        .values_list("recipient_id", flat=True)
        .distinct()
    )
    for user_id in recipients:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""UPDATE {NOTIFICATION} SET email = 'sent'
                        WHERE id IN (
                            SELECT id FROM {NOTIFICATION} WHERE recipient_id = %(user)s AND email = 'digest'
                            ORDER BY id FOR UPDATE SKIP LOCKED
                        )
                        RETURNING id, payload, link""",  # noqa: S608
                    {"user": user_id},
                )
                rows = sorted(cursor.fetchall())
            address = User.objects.filter(pk=user_id).values_list("email", flat=True).first()
            if not rows or not address:
                continue
            lines = [_line(_text(payload), link) for _id, payload, link in rows]
            subject = f"Forecastle: {len(rows)} thing{'s' if len(rows) != 1 else ''} you follow, {now:%d %b %Y}"
            get_connection(fail_silently=False).send_messages(
                [_message(to=address, user_id=user_id, kind=ALL_KINDS, subject=subject, lines=lines)]
            )
            mails += 1
    return mails
