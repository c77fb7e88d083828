"""Dates at the edges of the calendar: every date and time the API takes (read from its OpenAPI
document: request bodies and query parameters) answers 422 naming the field for 0001-01-01 and
9999-12-31, never a 500."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.scheduling.conftest import booking, next_monday

EDGES = {"date": ("0001-01-01", "9999-12-31"), "date-time": ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59+08:00")}


def _date_fields(schema: dict[str, Any], components: dict[str, Any], path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    for alternative in schema.get("anyOf", []):
        yield from _date_fields(alternative, components, path)
    if schema.get("format") in EDGES:
        yield path, schema["format"]
    for name, field in schema.get("properties", {}).items():
        yield from _date_fields(field, components, [*path, name])
    if schema.get("type") == "array" and "items" in schema:
        yield from _date_fields(schema["items"], components, [*path, 0])


def _body(path: list[Any], value: str) -> Any:
    """{'overrides': [{'date': value}]} for ['overrides', 0, 'date']."""
    if not path:
        return value
    inner = _body(path[1:], value)
    return [inner] if path[0] == 0 else {path[0]: inner}


async def test_every_date_of_the_api_at_the_calendar_s_edges_is_refused_naming_it(
    staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    ids = {"/api/experts/": pool["experts"]["lawyer"][0]["id"], "/api/disputes/": pool["dispute"]["id"],
           "/api/sessions/": session["id"]}
    spec = (await staff_client.get("/api/openapi.json")).json()
    components = spec.get("components", {}).get("schemas", {})
    walked = []
    for route, operations in spec["paths"].items():
        url = route
        for prefix, id_ in ids.items():
            if route.startswith(prefix):
                url = route.replace("{id}", str(id_))
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            fields = list(_date_fields(body, components, [])) if body else []
            for path, kind in fields:
                for edge in EDGES[kind]:
                    response = await staff_client.request(method, url, json=_body(path, edge))
                    name = ".".join(str(part) for part in path)
                    assert response.status_code == 422, (method, url, name, edge, response.text)
                    assert name in [d["field"] for d in response.json().get("details", [])], (method, url, name, response.text)
                    walked.append(f"{method.upper()} {route} {name}")
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("schema", {}).get("format") == "date":
                    for edge in EDGES["date"]:
                        response = await staff_client.request(method, url, params={parameter["name"]: edge})
                        assert response.status_code in (400, 422), (method, url, parameter["name"], response.text)
                        walked.append(f"{method.upper()} {route} ?{parameter['name']}")
    assert len({w for w in walked if "?" not in w}) >= 12, walked  # the request bodies' 12 dates and times


@pytest.mark.parametrize("week_of", ["0001-01-01", "9999-12-31"])
async def test_a_weekly_review_for_a_week_at_the_calendar_s_edge_is_refused(staff_client: httpx.AsyncClient, week_of: str) -> None:
    response = await staff_client.post("/api/reviews", json={"week_of": week_of})
    assert response.status_code == 422 and response.json()["field"] == "week_of"
    assert "1900" in response.json()["message"] and "2199" in response.json()["message"]
