from __future__ import annotations

import httpx


def test_an_account_registered_over_http_can_be_read_back_with_its_version(
    api: httpx.Client,
) -> None:
    created = api.post("/accounts", json={"name": "Acme", "country": "DE"})
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    assert created.headers["Location"] == f"/accounts/{account_id}"

    read = api.get(f"/accounts/{account_id}")
    assert read.status_code == 200
    assert read.json()["name"] == "Acme"
    assert read.headers["ETag"] == '"1"'
