"""The discussion on the market page: posting, replying, editing, deleting and reporting comments, following
the market, and the staff's moderation queue. Plain forms that post and redirect back (no script needed)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthedHttpRequest
from config.core.api import CommentThrottle
from config.core.errors import DomainError
from markets.forms import CommentEditForm, CommentForm, CommentReportForm, add_domain_error
from markets.models import Comment, CommentReport
from markets.selectors.comments import comment_visible, open_reports
from markets.services.comments import (
    comment_create,
    comment_delete,
    comment_edit,
    comment_editable,
    comment_hide,
    comment_link,
    comment_report,
    comment_report_dismiss,
)
from markets.services.follows import market_follow_set
from markets.views.market import discussion_context, market_context, market_or_404
from markets.views.staff import staff_required


def visible_comment_or_404(comment_id: int) -> Comment:
    comment = comment_visible(comment_id=comment_id)
    if comment is None:
        raise Http404("No such comment.")
    return comment


@login_required
@require_POST
def comment_create_view(request: AuthedHttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug)
    form = CommentForm(request.POST)
    if form.is_valid():
        wait = CommentThrottle().account_wait(request.user.pk)
        if wait is not None:
            form.add_error("body", f"You are commenting fast: wait {max(1, round(wait))} seconds and post again.")
        else:
            try:
                comment = comment_create(
                    market=market,
                    author=request.user,
                    body=form.cleaned_data["body"],
                    parent_id=form.cleaned_data["parent"],
                    attach_forecast=form.cleaned_data["attach_forecast"],
                )
            except DomainError as error:
                add_domain_error(form, error, {"attach_forecast": "attach_forecast", "parent": "body"})
            else:
                return redirect(comment_link(comment, market))
    context = market_context(request, market)
    context.update(discussion_context(request, market))
    context["comment_form"] = form
    return render(request, "markets/detail.html", context, status=422)


@login_required
@require_http_methods(["GET", "POST"])
def comment_edit_view(request: AuthedHttpRequest, comment_id: int) -> HttpResponse:
    comment = visible_comment_or_404(comment_id)
    if comment.author_id != request.user.pk:
        raise Http404("No such comment of yours.")
    form = CommentEditForm(request.POST or None, initial={"body": comment.body})
    if request.method == "POST" and form.is_valid():
        try:
            comment_edit(comment=comment, user=request.user, body=form.cleaned_data["body"])
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, "Comment updated.")
            return redirect(comment_link(comment, comment.market))
    status = 422 if form.errors else 200
    context = {"form": form, "comment": comment, "editable": comment_editable(comment, user=request.user)}
    return render(request, "markets/comment_edit.html", context, status=status)


@login_required
@require_POST
def comment_delete_view(request: AuthedHttpRequest, comment_id: int) -> HttpResponse:
    comment = visible_comment_or_404(comment_id)
    if comment.author_id != request.user.pk:
        raise Http404("No such comment of yours.")
    comment_delete(comment=comment, user=request.user)
    messages.success(request, "Comment deleted.")
    return redirect(reverse("markets:detail", args=[comment.market.slug]) + "#discussion")


@login_required
@require_POST
def comment_report_view(request: AuthedHttpRequest, comment_id: int) -> HttpResponse:
    comment = visible_comment_or_404(comment_id)
    form = CommentReportForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        comment_report(comment=comment, reporter=request.user, reason=reason)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Thank you: staff will look at this comment.")
    return redirect(comment_link(comment, comment.market))


@staff_required
@require_POST
def comment_hide_view(request: AuthedHttpRequest, comment_id: int) -> HttpResponse:
    comment = visible_comment_or_404(comment_id)
    comment_hide(comment=comment, staff=request.user)
    messages.success(request, "Comment hidden.")
    if request.POST.get("next") == "queue":
        return redirect("markets:staff-comments")
    return redirect(reverse("markets:detail", args=[comment.market.slug]) + "#discussion")


@login_required
@require_POST
def market_follow_view(request: AuthedHttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug, with_outcomes=False)
    following = request.POST.get("following") == "yes"
    market_follow_set(user=request.user, market=market, following=following)
    messages.success(request, "You follow this market." if following else "You no longer follow this market.")
    return redirect("markets:detail", slug=market.slug)


@staff_required
@require_GET
def moderation_queue_view(request: HttpRequest) -> HttpResponse:
    return render(request, "markets/staff/comments.html", {"reports": open_reports()[:200]})


@staff_required
@require_POST
def report_dismiss_view(request: AuthedHttpRequest, report_id: int) -> HttpResponse:
    report = CommentReport.objects.filter(pk=report_id).first()
    if report is None:
        raise Http404("No such report.")
    comment_report_dismiss(report=report, staff=request.user)
    messages.success(request, "Report dismissed; the comment stays.")
    return redirect("markets:staff-comments")
