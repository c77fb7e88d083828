"""The OpenAPI document, built from the ApiRoutes and their pydantic body models."""
from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute

from server.http import ApiRoute

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build_openapi(routes: Iterable[BaseRoute], version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for every ApiRoute."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
    for route in routes:
        if not isinstance(route, ApiRoute):
            continue
        doc = inspect.getdoc(route.endpoint) or ""
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            operation: dict[str, Any] = {
                "summary": doc.splitlines()[0] if doc else route.name,
                "operationId": f"{route.name}_{method.lower()}",
                "tags": [route.tag] if route.tag else [],
                "responses": {"200": {"description": "success"}, "4XX": _ERROR},
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", route.path)
            ]
            if params:
                operation["parameters"] = params
            if route.body_model is not None:
                name = route.body_model.__name__
                schema = route.body_model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[name] = schema
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                }
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tiaojie 调解 API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "tiaojie_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }
