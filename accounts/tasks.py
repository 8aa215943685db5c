"""Thin Celery tasks of accounts: mailing notifications. Schedules live in config/settings/base.py."""

import logging
from smtplib import SMTPException

from celery import shared_task
from django.db import OperationalError, transaction
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from accounts import notifications

logger = logging.getLogger(__name__)


@shared_task(
    name="accounts.tasks.notifications_email_send",
    acks_late=True,
    # A batch whose send failed was rolled back: trying again sends it.
    autoretry_for=(OperationalError, SMTPException, OSError),
    retry_backoff=True,
    max_retries=10,
)
def notifications_email_send() -> int:
    """Mails the notifications waiting to go at once. Enqueued after each fan-out; beat sweeps every minute."""
    sent = notifications.notifications_email_send()
    if sent:
        logger.info("mailed %d notifications", sent)
    return sent


@shared_task(name="accounts.tasks.notifications_digest_send", acks_late=True)
def notifications_digest_send() -> int:
    """The daily digest: one mail per user with what waited for it."""
    mails = notifications.notifications_digest_send()
    logger.info("sent %d notification digests", mails)
    return mails


def notifications_email_enqueue() -> None:
    """After commit, asks a worker to mail what waits to go at once. If the broker cannot take the message, the
    request still succeeds (the notifications are committed): beat's minutely run mails them."""

    def send() -> None:
        try:
            notifications_email_send.delay()
        except (KombuOperationalError, RedisError, OSError):
            logger.warning("notification mail not queued, the broker is unreachable; beat's next run sends it")

    transaction.on_commit(send)
