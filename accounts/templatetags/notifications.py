"""The notification bell of every page's header: the signed-in user's unread count."""

from django import template

from accounts.models import User
from accounts.notifications import notification_unread_count

register = template.Library()


@register.simple_tag
def unread_notifications(user: User) -> int:
    """One count on the partial index of unread notifications (0 when signed out)."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return notification_unread_count(user_id=user.pk)
