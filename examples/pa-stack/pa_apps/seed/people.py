"""Deterministic, realistic-looking people, agents and memories (PII on purpose:
upgrade-infra masks names and e-mails when it builds a staging copy)."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

FIRST = (
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Charlotte James Mia Lucas Harper Mateo "
    "Evelyn Levi Aria Ethan Chloé Jack Zoë Hugo Ingrid Lars Aisha Omar Mei Hiroshi Priya Arjun "
    "Fatima Yusuf Sofía Diego Léa Jules Anja Lukas Nora Emil Freya Matteo Giulia Kai Leilani "
    "Siobhan Declan Björn Astrid José Camila Tomasz Agnieszka Nikolai Olga Kwame Ama Thabo Zanele"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Müller Schmidt Dubois Lefèvre Rossi Bianchi Kowalski Nowak Ivanova Tanaka Suzuki Kim Park "
    "Chen Wang Singh Patel Okafor Mensah Dlamini O'Brien Murphy Andersson Johansson Haddad"
).split()
PARTICLE_LAST = ("van der Berg", "de la Cruz", "da Silva", "von Trapp", "Mac Donald", "del Río")
MIDDLE = ("Ann", "Marie", "Jean", "Lou", "Grace", "José")
MONONYMS = ("Madonna", "Pelé", "Björk")
DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example")

AGENT_NAMES = ("Jarvis", "Friday", "Ada", "Sage", "Atlas", "Nova", "Echo", "Orion")
PROMPTS = (
    "You are a concise personal assistant. Keep answers short.",
    "You are a friendly assistant who remembers the user's preferences.",
    "You help plan the week: meetings, errands, workouts.",
    "You are a travel assistant; always mention time zones.",
)
MEMORY_FACTS = {
    "birthday": ("March 14", "July 2", "November 23", "January 30", "September 9"),
    "coffee": ("oat flat white", "double espresso", "black, no sugar", "decaf latte"),
    "dentist": ("Dr. Alvarez, every 6 months", "Dr. Chen on Elm Street", "checkup due in May"),
    "gym": ("Mon/Wed/Fri 7am", "yoga on Sundays", "swimming twice a week"),
    "allergy": ("peanuts", "penicillin", "cats", "none known"),
    "partner": ("Sam, anniversary June 5", "Alex, loves tulips", "Robin, vegetarian"),
    "wifi": ("home network 'Lighthouse'", "office guest network 'Visitors'"),
    "car": ("blue hatchback, service in October", "electric, charges overnight"),
    "project": ("Q3 migration, deadline Sept 30", "garden shed", "learning Spanish"),
    "flight": ("prefers aisle seats", "frequent flyer with Star Alliance"),
}
TAGS = ("personal", "health", "work", "family", "routine")


@dataclass(frozen=True)
class Person:
    full_name: str
    email: str


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def person(i: int) -> Person:
    """The i-th person (0-based); a few have middle names, particles or one name."""
    first = FIRST[i % len(FIRST)]
    last = LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
    if i % 97 == 41:
        full, local = MONONYMS[i % len(MONONYMS)], _ascii(MONONYMS[i % len(MONONYMS)])
    else:
        if i % 23 == 5:
            last = PARTICLE_LAST[i % len(PARTICLE_LAST)]
        full = f"{first} {last}"
        if i % 17 == 3:
            full = f"{first} {MIDDLE[i % len(MIDDLE)]} {last}"
        local = f"{_ascii(first)}.{_ascii(last)}"
    return Person(full, f"{local}{i}@{DOMAINS[i % len(DOMAINS)]}")


def people(count: int) -> list[Person]:
    return [person(i) for i in range(count)]


def agents_for(user_index: int) -> int:
    """How many agents the user owns (1 or 2)."""
    return 2 if user_index % 3 == 0 else 1


def memories_for(agent_index: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """(key, content, tags) of the agent's memories: 4 to 8 distinct keys."""
    keys = list(MEMORY_FACTS)
    count = 4 + agent_index % 5
    start = agent_index % len(keys)
    result = []
    for j in range(count):
        key = keys[(start + j) % len(keys)]
        facts = MEMORY_FACTS[key]
        tags = (TAGS[(agent_index + j) % len(TAGS)],) + (("important",) if j == 0 else ())
        result.append((key, facts[(agent_index + j) % len(facts)], tags))
    return result
