"""Writes of the discussion under a market: comments and replies, edits, deletion, reports and moderation.

A comment is rendered from Markdown and sanitized when it is written (config.core.markdown) and carries what
its author held in the market at that moment; replies and @mentions notify their users, exactly once per
comment and recipient (accounts.notifications), and the mail goes out after commit through Celery.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Notification, User
from accounts.notifications import notification_send
from accounts.tasks import notifications_email_enqueue
from config.core.markdown import markdown_render, mentioned_usernames
from markets.errors import EditWindowClosed, InvalidInput, NoForecast, NotAuthor
from markets.models import Comment, CommentReport, Market, Position, Trade

COMMENT_MAX_CHARS = 10_000
REPORT_REASON_MAX_CHARS = 500


def comment_body_clean(body: object) -> str:
    """The text of a comment, or InvalidInput naming the field: not empty, at most 10,000 characters, no NUL."""
    if not isinstance(body, str):
        raise InvalidInput("Write the comment as text.", field="body")
    if "\x00" in body:
        raise InvalidInput("A comment cannot contain NUL characters.", field="body")
    text = body.strip()
    if not text:
        raise InvalidInput("Write something first: the comment is empty.", field="body")
    if len(text) > COMMENT_MAX_CHARS:
        raise InvalidInput(
            f"A comment is at most {COMMENT_MAX_CHARS:,} characters; this one has {len(text):,}.", field="body"
        )
    return text


def comment_link(comment: Comment, market: Market) -> str:
    return reverse("markets:detail", args=[market.slug]) + f"#comment-{comment.pk}"


def _render(body: str) -> tuple[str, dict[str, int]]:
    """The sanitized HTML, and the mentioned users that exist (username -> id)."""
    names = mentioned_usernames(body)
    users = dict(User.objects.filter(username__in=names, is_active=True).values_list("username", "pk")) if names else {}
    html = markdown_render(
        body, mention_url=lambda name: reverse("forecast:user-profile", args=[name]) if name in users else None
    )
    return html, users


def _position(*, market: Market, user: User) -> list[dict[str, str]]:
    held = (
        Position.objects.filter(market=market, user=user, shares__gt=0)
        .select_related("outcome")
        .order_by("outcome__index")
    )
    return [
        {"outcome": position.outcome.code, "label": position.outcome.label, "shares": f"{position.shares:.6f}"}
        for position in held
    ]


def _forecast(*, market: Market, user: User) -> list[dict[str, object]]:
    """The author's current forecast: the probabilities right after their latest trade in the market."""
    latest = (
        Trade.objects.filter(market=market, user=user).order_by("-created_at", "-id").values("probabilities_after")
    ).first()
    if latest is None:
        raise NoForecast("You have no forecast in this market yet: trade it first.", field="attach_forecast")
    outcomes = market.outcomes.order_by("index").values_list("code", "label")
    return [
        {"outcome": code, "label": label, "probability": probability}
        for (code, label), probability in zip(outcomes, latest["probabilities_after"], strict=False)
    ]


def _notify(
    *, comment: Comment, market: Market, author: User, mentioned: dict[str, int], parent: Comment | None
) -> None:
    """A reply tells the parent's author; a mention tells the mentioned (not the author, and not the parent's
    author, whom the reply already told). Mail follows after commit."""
    question = market.question if len(market.question) <= 80 else market.question[:79] + "…"
    link = comment_link(comment, market)
    told: set[int] = {author.pk}
    written = 0
    if parent is not None and parent.author_id not in told:
        written += notification_send(
            kind=Notification.Kind.COMMENT_REPLY,
            event_key=f"comment_reply:{comment.pk}",
            recipient_ids=[parent.author_id],
            text=f"{author.username} replied to your comment on “{question}”",
            link=link,
        )
        told.add(parent.author_id)
    mentioned_ids = set(mentioned.values()) - told
    if mentioned_ids:
        written += notification_send(
            kind=Notification.Kind.MENTION,
            event_key=f"mention:{comment.pk}",
            recipient_ids=mentioned_ids,
            text=f"{author.username} mentioned you on “{question}”",
            link=link,
        )
    if written:
        notifications_email_enqueue()


def comment_create(
    *,
    market: Market,
    author: User,
    body: object,
    parent_id: int | None = None,
    attach_forecast: bool = False,
    now: datetime | None = None,
) -> Comment:
    """A comment under `market`, or a reply to one of its comments (a reply to a reply joins the same thread:
    one level). The author's position is recorded as it is now."""
    text = comment_body_clean(body)
    if market.status == Market.Status.DRAFT:
        raise InvalidInput("A draft market has no discussion yet.")
    now = now or timezone.now()
    with transaction.atomic():
        parent = None
        if parent_id is not None:
            parent = (
                Comment.objects.filter(pk=parent_id, market=market, deleted_at__isnull=True, hidden_at__isnull=True)
                .select_for_update()
                .first()
            )
            if parent is None:
                raise InvalidInput("There is no such comment to reply to under this market.", field="parent")
            if parent.parent_id is not None:
                parent = Comment.objects.select_for_update().get(pk=parent.parent_id)
        html, mentioned = _render(text)
        comment = Comment.objects.create(
            market=market,
            author=author,
            parent=parent,
            body=text,
            body_html=html,
            position=_position(market=market, user=author),
            forecast=_forecast(market=market, user=author) if attach_forecast else None,
            created_at=now,
        )
        if parent is not None:
            Comment.objects.filter(pk=parent.pk).update(reply_count=F("reply_count") + 1)
        _notify(comment=comment, market=market, author=author, mentioned=mentioned, parent=parent)
    return comment


def edit_window() -> timedelta:
    return timedelta(minutes=settings.FORECASTLE_COMMENT_EDIT_MINUTES)


def comment_editable(comment: Comment, *, user: object, now: datetime | None = None) -> bool:
    """Whether `user` may still edit `comment` (its author, within the edit window)."""
    now = now or timezone.now()
    return (
        getattr(user, "pk", None) == comment.author_id
        and comment.is_visible
        and now - comment.created_at <= edit_window()
    )


def _own_visible(comment: Comment, user: User) -> None:
    if comment.author_id != user.pk:
        raise NotAuthor("Only its author can change or delete a comment.")
    if not comment.is_visible:
        raise InvalidInput("This comment was deleted or hidden.")


def comment_edit(*, comment: Comment, user: User, body: object, now: datetime | None = None) -> Comment:
    """The author rewrites their comment within the edit window; it then shows as edited. Someone newly
    mentioned is told; those already told are not told again."""
    text = comment_body_clean(body)
    now = now or timezone.now()
    _own_visible(comment, user)
    if now - comment.created_at > edit_window():
        minutes = settings.FORECASTLE_COMMENT_EDIT_MINUTES
        raise EditWindowClosed(f"A comment can be edited for {minutes} minutes after it is posted.")
    with transaction.atomic():
        html, mentioned = _render(text)
        comment.body, comment.body_html, comment.edited_at = text, html, now
        comment.save(update_fields=["body", "body_html", "edited_at"])
        parent = comment.parent if comment.parent_id is not None else None
        _notify(comment=comment, market=comment.market, author=user, mentioned=mentioned, parent=parent)
    return comment


def comment_delete(*, comment: Comment, user: User, now: datetime | None = None) -> None:
    """The author deletes their comment (kept for the record, shown to nobody)."""
    _own_visible(comment, user)
    with transaction.atomic():
        updated = Comment.objects.filter(pk=comment.pk, deleted_at__isnull=True).update(
            deleted_at=now or timezone.now()
        )
        if updated and comment.parent_id is not None:
            Comment.objects.filter(pk=comment.parent_id).update(reply_count=F("reply_count") - 1)


def comment_hide(*, comment: Comment, staff: User, now: datetime | None = None) -> None:
    """Staff hide a comment from everyone (the API and the pages); its open reports are closed as acted on."""
    if not staff.is_staff:
        raise NotAuthor("Only staff can hide comments.")
    now = now or timezone.now()
    with transaction.atomic():
        updated = Comment.objects.filter(pk=comment.pk, hidden_at__isnull=True).update(hidden_at=now, hidden_by=staff)
        if updated and comment.parent_id is not None and comment.deleted_at is None:
            Comment.objects.filter(pk=comment.parent_id).update(reply_count=F("reply_count") - 1)
        CommentReport.objects.filter(comment=comment, state=CommentReport.Outcome.OPEN).update(
            state=CommentReport.Outcome.HIDDEN, handled_by=staff, handled_at=now
        )


def comment_report(*, comment: Comment, reporter: User, reason: object = "", now: datetime | None = None) -> bool:
    """A user reports a comment to staff; True when the report is new (one report per user and comment)."""
    if not isinstance(reason, str) or "\x00" in reason:
        raise InvalidInput("Give the reason as text, without NUL characters.", field="reason")
    reason = reason.strip()
    if len(reason) > REPORT_REASON_MAX_CHARS:
        raise InvalidInput(f"A reason is at most {REPORT_REASON_MAX_CHARS} characters.", field="reason")
    if not comment.is_visible:
        raise InvalidInput("This comment was deleted or hidden.")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CommentReport._meta.db_table} (comment_id, reporter_id, reason, created_at, state)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, 'open') ON CONFLICT (comment_id, reporter_id) DO NOTHING",
            [comment.pk, reporter.pk, reason, now or timezone.now()],
        )
        return cursor.rowcount == 1


def comment_report_dismiss(*, report: CommentReport, staff: User, now: datetime | None = None) -> None:
    """Staff keep the comment: the report leaves the queue."""
    CommentReport.objects.filter(pk=report.pk, state=CommentReport.Outcome.OPEN).update(
        state=CommentReport.Outcome.DISMISSED, handled_by=staff, handled_at=now or timezone.now()
    )
