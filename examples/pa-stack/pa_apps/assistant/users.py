"""/api/users - the part of the API that changes shape in release 1.1.0."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import text

from pa_apps.common.mail import send_mail
from pa_apps.common.names import join_name, split_full_name
from pa_apps.common.releases import Features
from pa_apps.common.web import Ctx

router = APIRouter(prefix="/api/users", tags=["users"])


class UserIn(BaseModel):
    email: str
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


def _columns(features: Features) -> str:
    if features.split_names:
        return "id, first_name, last_name, email, created_at"
    return "id, full_name, email, created_at"


def _out(row, features: Features) -> dict:
    user = dict(row._mapping)
    if features.split_names:
        user["full_name"] = join_name(user["first_name"], user["last_name"])
    return user


def _name_values(body: UserIn, features: Features) -> dict:
    if not features.split_names:
        if not (body.full_name or "").strip():
            raise HTTPException(422, "full_name is required")
        return {"full_name": body.full_name.strip()}
    if body.first_name is not None:
        first, last = body.first_name.strip(), (body.last_name or "").strip()
    else:
        first, last = split_full_name(body.full_name or "")
    if not first:
        raise HTTPException(422, "first_name (or full_name) is required")
    return {"first_name": first, "last_name": last}


@router.get("")
def list_users(
    ctx: Ctx,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
):
    sql = f"SELECT {_columns(ctx.features)} FROM users ORDER BY id LIMIT :limit OFFSET :offset"
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(sql), {"limit": limit, "offset": offset})
        return [_out(r, ctx.features) for r in rows]


@router.get("/{user_id}")
def get_user(ctx: Ctx, user_id: int):
    sql = f"SELECT {_columns(ctx.features)} FROM users WHERE id = :id"
    with ctx.engine.connect() as conn:
        row = conn.execute(text(sql), {"id": user_id}).first()
    if row is None:
        raise HTTPException(404, f"user {user_id} not found")
    return _out(row, ctx.features)


@router.post("", status_code=201)
def create_user(ctx: Ctx, body: UserIn):
    email = body.email.strip()
    if "@" not in email[1:]:
        raise HTTPException(422, "email must look like name@domain")
    values = {**_name_values(body, ctx.features), "email": email}
    names = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    sql = f"INSERT INTO users ({names}) VALUES ({params}) RETURNING {_columns(ctx.features)}"
    with ctx.engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM users WHERE email = :e"), {"e": email}).first():
            raise HTTPException(409, f"a user with email {email} already exists")
        user = _out(conn.execute(text(sql), values).one(), ctx.features)
    send_mail(ctx.settings, email, "Welcome to your personal assistant", f"Hello {user['full_name']}!")
    return user
