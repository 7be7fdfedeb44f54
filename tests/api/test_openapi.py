"""The OpenAPI schema documents the refusals the API really sends: problem+json."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import pytest


def schema_of(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def test_every_documented_refusal_is_a_problem(api: httpx.Client) -> None:
    spec = schema_of(api)
    refusals = [
        (f"{method.upper()} {path}", status, answer)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
    ]

    assert refusals
    for label, status, answer in refusals:
        assert list(answer["content"]) == ["application/problem+json"], (label, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_a_command_documents_each_refusal_it_can_send(api: httpx.Client) -> None:
    responses = schema_of(api)["paths"]["/deals/{deal_id}/won"]["post"]["responses"]

    assert sorted(responses) == sorted(
        ["200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"]
    )
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_a_report_of_one_pipeline_documents_its_404(api: httpx.Client) -> None:
    responses = schema_of(api)["paths"]["/reports/funnel"]["get"]["responses"]

    assert list(responses["404"]["content"]) == ["application/problem+json"]
    assert responses["404"]["description"] == "no pipeline with that id"


def test_a_real_refusal_matches_the_documented_problem(api: httpx.Client) -> None:
    spec = schema_of(api)
    refused = api.post("/pipelines", json={"name": "P", "stages": [{"name": "L"}]})

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    schema = {"$ref": "#/components/schemas/Problem", "components": spec["components"]}
    jsonschema.validate(refused.json(), schema)
    assert refused.json()["errors"][0]["field"] == "body.stages.0.probability"


def test_the_command_headers_document_their_rules(api: httpx.Client) -> None:
    parameters = schema_of(api)["paths"]["/accounts"]["post"]["parameters"]
    rules = {p["name"]: p["schema"] for p in parameters}

    if_match = re.compile(rules["if-match"]["pattern"])
    assert if_match.match('"3"')
    assert if_match.match('W/"3"')
    assert not if_match.match('"1.5"')
    request_id = re.compile(rules["x-request-id"]["pattern"])
    assert request_id.match("req-1:a.b_c")
    assert not request_id.match("has spaces")
    assert rules["idempotency-key"]["maxLength"] == 200


def test_a_header_within_its_documented_rules_is_accepted(api: httpx.Client) -> None:
    headers = {"If-Match": 'W/"0"', "X-Request-ID": "req-1:a.b_c", "Idempotency-Key": "k" * 200}
    created = api.post("/accounts", json={"name": "Acme"}, headers=headers)

    assert created.status_code == 201, created.text


def test_no_parameter_is_documented_as_null(api: httpx.Client) -> None:
    # A header or a query parameter is sent or not; "null" would go out as the text.
    spec = schema_of(api)
    parameters = [
        parameter
        for operations in spec["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    ]

    assert parameters
    for parameter in parameters:
        assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter
    audit = {p["name"]: p for p in spec["paths"]["/audit"]["get"]["parameters"]}
    assert audit["limit"]["schema"]["type"] == "integer"
    assert audit["limit"]["required"] is False


@pytest.mark.parametrize("model", ["OpenDeal", "DealChanges"])
def test_an_amount_as_a_string_is_documented_as_a_decimal(api: httpx.Client, model: str) -> None:
    amount = schema_of(api)["components"]["schemas"][model]["properties"]["amount"]
    (text,) = [branch for branch in amount["anyOf"] if branch.get("type") == "string"]
    decimal = re.compile(text["pattern"])

    for good in ("12500.00", "0.5", ".5", "1e3", " 7 "):
        assert decimal.match(good), good
    for bad in ("ten", "12,50", "€10", "", "NaN", "0x10"):
        assert not decimal.match(bad), bad


def test_an_amount_the_schema_allows_opens_a_deal(api: httpx.Client) -> None:
    stages = [{"name": "Lead", "probability": 10}]
    pipeline = api.post("/pipelines", json={"name": "P", "stages": stages}).json()["id"]
    deal = {"title": "T", "amount": " 1.25e2 ", "currency": "EUR", "pipeline_id": pipeline}

    opened = api.post("/deals", json=deal)

    assert opened.status_code == 201, opened.text
    assert Decimal(api.get(f"/deals/{opened.json()['id']}").json()["amount"]) == 125
