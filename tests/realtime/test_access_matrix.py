"""Who may open which websocket stream (docs/realtime.md): every role against
both streams, with the exact outcome. A refusal is accepted first, then one error frame and the
close code (4401 not signed in, 4403 a stream the user may not see), so browsers see the code;
an accepted stream stays open and answers a ping.

Roles as in tests/test_permissions.py, plus a dispatcher who watches "south" only and asks for
"north" (a stream it may not see), for "south" (its own) or for nothing (all it watches).
"""

import pytest

from tests.conftest import make_user, token_for
from tests.contractors.factories import ContractorFactory, RegionFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

OPEN = "open"
#        role                 query            /ws/dispatch/  /ws/contractor/
MATRIX = [
    ("anonymous", "", 4401, 4401),
    ("dispatcher", "", OPEN, 4403),
    ("dispatcher", "regions=north,south", OPEN, 4403),
    ("south_dispatcher", "", OPEN, 4403),
    ("south_dispatcher", "regions=south", OPEN, 4403),
    ("south_dispatcher", "regions=north", 4403, 4403),
    ("south_dispatcher", "regions=south,north", 4403, 4403),
    ("admin", "", OPEN, 4403),
    ("admin", "regions=north", OPEN, 4403),
    ("contractor", "", 4403, OPEN),
    ("other_contractor", "", 4403, OPEN),
    ("no_role", "", 4403, 4403),
]
CASES = [
    pytest.param(role, query, path, outcome, id=f"{role}-{path.strip('/')}-{query or 'all'}")
    for role, query, dispatch, contractor in MATRIX
    for path, outcome in (("/ws/dispatch/", dispatch), ("/ws/contractor/", contractor))
]


@pytest.fixture
def tokens(transactional_db) -> dict[str, str | None]:
    north = RegionFactory(slug="north")
    south = RegionFactory(slug="south", center_lat=39.95, center_lng=-75.17, radius_miles=25)
    users = {
        "dispatcher": make_user("ada", role="dispatcher"),
        "south_dispatcher": make_user("sol", role="dispatcher", regions=[south]),
        "admin": make_user("boss", role="admin"),
        "contractor": make_user("own", role="contractor", contractor=ContractorFactory()),
        "other_contractor": make_user("other", role="contractor", contractor=ContractorFactory()),
        "no_role": make_user("nobody"),
    }
    assert north.slug == "north"
    return {"anonymous": None} | {role: token_for(user) for role, user in users.items()}


@pytest.mark.parametrize(("role", "query", "path", "outcome"), CASES)
async def test_stream_access_matrix(streams, tokens, role, query, path, outcome):
    params = [p for p in (f"token={tokens[role]}" if tokens[role] else "", query) if p]
    stream = streams.client(path + ("?" + "&".join(params) if params else ""))

    assert await stream.connect() == (True, None)

    if outcome == OPEN:
        assert await stream.ping() == {"kind": "pong"}
        assert await stream.ping() == {"kind": "pong"}  # it stays open, and sent nothing else
    else:
        frame = await stream.frame()
        expected_error = "not_authenticated" if outcome == 4401 else "forbidden"
        assert (frame["kind"], frame["code"]) == ("error", expected_error)
        assert await stream.close_code() == outcome
