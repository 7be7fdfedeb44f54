"""The command mix of ``bench commands`` names only records of the rep who sends it:
sales reps reach only their own records, so anything else is refused (403) and the
bench would measure refusals."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bench.workloads import MIX_WEIGHTS, CommandMix, Fixtures, World, owned


@given(reps=st.integers(1, 12), extra=st.integers(0, 40), k=st.integers(0, 500))
def test_owned_stays_below_n_and_with_its_rep(reps: int, extra: int, k: int) -> None:
    n = reps + extra
    for rep in range(reps):
        index = owned(rep, k, n, reps)
        assert 0 <= index < n
        assert index % reps == rep


def test_every_request_of_the_mix_names_records_of_its_own_rep() -> None:
    users = 3
    fixtures = Fixtures(
        owner_token="owner",
        rep_tokens=[f"token{r}" for r in range(users)],
        pipeline_id="pipeline",
        account_ids=[f"account{i}" for i in range(7)],
        contact_ids=[f"contact{i}" for i in range(8)],
        deal_ids=[f"deal{i}" for i in range(10)],
    )
    mix = CommandMix(World(fixtures, "tag", seed=1), MIX_WEIGHTS)
    seen = set()
    for n in range(600):
        worker = n % 5
        request = mix.next(worker)
        rep = worker % users
        assert request.token == f"token{rep}"
        named = [request.path.split("/")[2]] if request.label == "move-deal" else []
        body = json.loads(request.body or b"{}")
        named += [body[k] for k in ("account_id", "deal_id") if k in body]
        named += body.get("contact_ids", [])
        for record in named:
            index = int(record.lstrip("acdelnotu"))
            kind = record.rstrip("0123456789")
            assert index % users == rep, (request.label, record, rep)
            seen.add(kind)
        seen.add(request.label)
    assert {"account", "contact", "deal", *MIX_WEIGHTS} <= seen
