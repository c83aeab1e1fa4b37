"""API compatibility: breaking and compatible changes between two OpenAPI documents."""

from __future__ import annotations

import copy
import json

import pytest

from upgrade_infra.core.errors import BadInput
from upgrade_infra.validation.openapi_diff import api_diff, diff_documents, load_document

BASE = {
    "openapi": "3.1.0",
    "paths": {
        "/api/users": {
            "get": {"parameters": [{"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}}],
                    "responses": {"200": {"content": {"application/json": {"schema": {
                        "type": "array", "items": {"$ref": "#/components/schemas/User"}}}}}}},
            "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserIn"}}}},
                     "responses": {"201": {"content": {"application/json": {"schema": {
                         "$ref": "#/components/schemas/User"}}}}}},
        },
        "/api/users/{user_id}": {"get": {"parameters": [{"name": "user_id", "in": "path", "required": True,
                                                         "schema": {"type": "integer"}}],
                                         "responses": {"200": {"description": "ok"}}},
                                 "delete": {"responses": {"204": {"description": "gone"}}}},
    },
    "components": {"schemas": {
        "User": {"type": "object", "required": ["id", "full_name"],
                 "properties": {"id": {"type": "integer"}, "full_name": {"type": "string"},
                                "email": {"type": "string"}}},
        "UserIn": {"type": "object", "required": ["email"],
                   "properties": {"email": {"type": "string"}, "full_name": {"type": "string"}}},
    }},
}


def changed(fn) -> dict:
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def texts(new) -> list[str]:
    return [str(c) for c in diff_documents(BASE, new)]


def test_identical_documents():
    assert diff_documents(BASE, copy.deepcopy(BASE)) == []


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["paths"].pop("/api/users/{user_id}"), "BREAKING: /api/users/{user_id}: path removed"),
    (lambda d: d["paths"]["/api/users/{user_id}"].pop("delete"), "BREAKING: DELETE /api/users/{user_id}: operation removed"),
    (lambda d: d["components"]["schemas"]["User"]["properties"].pop("full_name"),
     "BREAKING: GET /api/users -> 200: response field [].full_name removed"),
    (lambda d: d["components"]["schemas"]["User"]["required"].remove("full_name"),
     "BREAKING: POST /api/users -> 201: response field full_name no longer guaranteed (not required)"),
    (lambda d: d["components"]["schemas"]["UserIn"]["required"].append("full_name"),
     "BREAKING: POST /api/users: request field full_name is now required"),
    (lambda d: d["components"]["schemas"]["User"]["properties"]["id"].update(type="string"),
     "BREAKING: POST /api/users -> 201: response id: type integer -> string"),
    (lambda d: d["paths"]["/api/users"]["get"]["parameters"][0].update(required=True),
     "BREAKING: GET /api/users: query parameter 'limit' is now required"),
    (lambda d: d["paths"]["/api/users"]["post"]["responses"].update({"202": d["paths"]["/api/users"]["post"]["responses"].pop("201")}),
     "BREAKING: POST /api/users: success response 201 removed (now 202)"),
    (lambda d: d["paths"]["/api/users"]["post"]["requestBody"].update(required=True),
     "BREAKING: POST /api/users: request body is now required"),
])
def test_breaking_changes(edit, expected):
    assert expected in texts(changed(edit))


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["paths"].update({"/api/new": {"get": {"responses": {}}}}), "compatible: /api/new: new path"),
    (lambda d: d["components"]["schemas"]["User"]["properties"].update(first_name={"type": "string"}),
     "compatible: POST /api/users -> 201: new response field first_name"),
    (lambda d: d["components"]["schemas"]["UserIn"]["properties"].update(first_name={"type": "string"}),
     "compatible: POST /api/users: new optional request field first_name"),
    (lambda d: d["paths"]["/api/users"]["get"]["parameters"].append({"name": "q", "in": "query"}),
     "compatible: GET /api/users: new optional query parameter 'q'"),
])
def test_compatible_changes(edit, expected):
    out = diff_documents(BASE, changed(edit))
    assert expected in [str(c) for c in out] and not any(c.breaking for c in out)


def test_report_and_documents(tmp_path):
    new = changed(lambda d: d["paths"].pop("/api/users/{user_id}"))
    d = api_diff("assistant", BASE, new, "production", "candidate.json")
    assert not d.compatible and d.to_dict()["breaking"] == 1
    p = tmp_path / "openapi.json"
    p.write_text(json.dumps(BASE))
    assert load_document(p) == BASE
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(BadInput, match="is not an OpenAPI document"):
        load_document(tmp_path / "x.json")
    with pytest.raises(BadInput, match="cannot read OpenAPI document"):
        load_document(tmp_path / "missing.json")
