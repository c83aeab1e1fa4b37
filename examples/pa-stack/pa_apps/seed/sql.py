"""Server-side helpers for fast, deterministic bulk generation."""
from __future__ import annotations

import random

import psycopg

# 4096 pseudo-random 512-character chunks of letters and spaces, generated
# from a fixed seed and loaded into a temp table.  Row content is a pure
# function of the row number, so a given size always seeds the same data, and
# it does not compress to nothing (about 5 bits of entropy per character).
CHUNKS = "pa_seed_chunks"
CHUNK_COUNT, CHUNK_SIZE, SEED = 4096, 512, 42
_ALPHABET = b"etaoinshrdlucmwfgypbvkjxqz      "  # 32 symbols


def chunk_texts(count: int = CHUNK_COUNT, size: int = CHUNK_SIZE, seed: int = SEED) -> list[str]:
    table = bytes.maketrans(bytes(range(256)), _ALPHABET * 8)
    raw = random.Random(seed).randbytes(count * size).translate(table).decode("ascii")
    return [raw[i * size:(i + 1) * size] for i in range(count)]


def create_chunks(conn: psycopg.Connection) -> None:
    """Session setup for bulk generation (temp chunk table, no JIT)."""
    conn.execute("SET jit = off")
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {CHUNKS} (i int PRIMARY KEY, chunk text NOT NULL)")
    conn.execute(f"TRUNCATE {CHUNKS}")
    with conn.cursor().copy(f"COPY {CHUNKS} (i, chunk) FROM STDIN") as copy:
        for i, text in enumerate(chunk_texts()):
            copy.write_row((i, text))
    conn.execute(f"ANALYZE {CHUNKS}")


# Chunk selectors: functions of g with a very long joint period.
_PICKS = (
    "mod(g, 4096)",
    "mod(g / 4096 + 3 * g::bigint + 1, 4096)",
    "mod(g / 37 + 5, 4096)",
    "mod(13 * g::bigint + g / 4093 + 7, 4096)",
    "mod(g / 521 + 29 * g::bigint + 11, 4096)",
)

PHRASES = [
    "Remind me to", "Can you summarize", "Please add to my calendar:", "What did we decide about",
    "Draft a reply to", "Note for later:", "Find the receipt for", "Book a table for",
    "Here is the summary you asked for:", "Sure, I scheduled", "I found these notes:",
    "Your reminder is set:", "Translated text:", "Shopping list:", "Meeting notes:", "Travel plan:",
]


def noise_joins(count: int) -> str:
    """JOIN clauses making chunk columns c0..c{count-1} available for row g."""
    return "\n".join(f"JOIN {CHUNKS} c{k} ON c{k}.i = {_PICKS[k]}" for k in range(count))


def noise(count: int) -> str:
    return " || ".join(f"c{k}.chunk" for k in range(count))


def phrase_expr(param: str = "phrases") -> str:
    return f"(%({param})s::text[])[1 + mod(g, {len(PHRASES)})]"


def table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return row is not None


def database_size(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def row_counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables if table_exists(conn, t)}
