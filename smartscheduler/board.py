"""The dispatcher board (`/`) and the contractor's own page (`/me/`).

Plain templates; the pages load their data from the JSON API with the session and stay live
over the websocket streams (static/board/*.js). The page renders the newest visible sequence so
the socket can resume from it (`?after=`) and miss nothing recorded after the page was built.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from contractors.access import Role, linked_contractor, roles_of
from events.publisher import head


def _last_sequence(user) -> int:
    # The head of the log, one index look-up: the socket's groups filter what follows.
    return head()


@login_required
@ensure_csrf_cookie
def board(request):
    roles = roles_of(request.user)
    if not roles & {Role.ADMIN, Role.DISPATCHER}:
        if Role.CONTRACTOR in roles:
            return redirect("me")
        return render(request, "board/no_role.html", status=403)
    return render(request, "board/board.html", {"last_sequence": _last_sequence(request.user)})


@login_required
@ensure_csrf_cookie
def me(request):
    contractor = linked_contractor(request.user)
    if contractor is None:
        return redirect("board")
    return render(
        request,
        "board/me.html",
        {"contractor": contractor, "last_sequence": _last_sequence(request.user)},
    )
