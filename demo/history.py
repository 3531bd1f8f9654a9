"""A seeded 311 history for the demo city's sandbox: past requests as residents typed them.

The demo pipeline learns from the city's own 311 history (``orchestration/history.py``), so
its sandbox starts with a few hundred past requests of the demo catalog's services over the
last 80 days, most of them closed. They are written the way residents fill in a 311 form or
app: an address, the problem in plain words, sometimes a detail or a phone number (masked on
the way in). Open ones carry an address but no point, so none is near enough a demo incident
to be linked to instead of filed. The wordings are this project's own, different from the
social-media templates of ``phrases.py``, and describe no real person or event. The same seed
gives the same texts, services and ages; times are placed relative to the moment the sandbox
is seeded.
"""

from __future__ import annotations

import random
import time
from typing import Any

# service_code -> what residents write into the 311 form. {addr}: a street address.
REQUESTS: dict[str, tuple[str, ...]] = {
    "POTHOLE": (
        "Pothole in the curb lane in front of {addr}, about two feet across and deep",
        "Several potholes on the block at {addr}, cars are hitting them hard",
        "Large hole in the asphalt at {addr} next to the manhole cover",
        "Pavement has caved in at {addr}, bus lane. Tire damage risk",
        "Deep pothole at the crosswalk by {addr}, cyclists have to swerve",
        "Street surface crumbling near {addr}, patch from last year came out",
    ),
    "STREETLIGHT": (
        "Street light out in front of {addr}",
        "Light pole at {addr} is dark every night since last week",
        "Alley light behind {addr} not working, very dark",
        "Three lights in a row out on the block of {addr}",
        "Street lamp at {addr} cycles on and off all night",
        "Pole light at {addr} stays on during the day and off at night",
    ),
    "LITTER_BIN": (
        "Public trash basket at {addr} is full and overflowing onto the sidewalk",
        "Corner litter basket at {addr} has not been emptied in days",
        "Garbage piling up around the city trash can at {addr}",
        "Litter can at the bus stop by {addr} overflowing, trash blowing around",
        "Overflowing public waste bin at {addr}, attracting rats",
    ),
    "MISSED_PICKUP": (
        "Garbage not collected at {addr} on scheduled day",
        "Blue recycling cart at {addr} was skipped this week",
        "Missed collection for the whole alley behind {addr}",
        "Black cart at {addr} not emptied, second week in a row",
        "Trash pickup missed at {addr}, carts still out at the curb",
    ),
    "FLOODING": (
        "Catch basin clogged at {addr}, water standing in the street",
        "Street flooding at {addr} after every rain, drain blocked with leaves",
        "Storm drain at {addr} backed up, water over the curb",
        "Standing water across the intersection near {addr} for two days",
        "Sewer grate at {addr} covered with debris, street floods",
    ),
    "GRAFFITI": (
        "Graffiti on the side of the building at {addr}",
        "Spray painted tags on the viaduct wall near {addr}",
        "Graffiti on the mailbox and light pole at {addr}, please remove",
        "Gang tags painted on the garage door in the alley behind {addr}",
        "Paint vandalism on the bus shelter at {addr}",
    ),
    "TREE_DEBRIS": (
        "Large branch down in the parkway at {addr}",
        "Tree limb fell across the sidewalk at {addr} during the storm",
        "Fallen parkway tree at {addr} blocking part of the street",
        "Broken hanging branch over the sidewalk at {addr}, could fall on someone",
        "Tree debris and limbs left in the street at {addr}",
    ),
    "SIDEWALK_BLOCKED": (
        "Sidewalk at {addr} blocked by construction materials, no pedestrian detour",
        "Dumpster placed on the sidewalk at {addr}, strollers cannot pass",
        "Sidewalk closed at {addr} without a posted permit",
        "Pedestrian walkway at {addr} obstructed by fencing, wheelchair users go into traffic",
        "Scaffolding blocks the whole sidewalk at {addr}",
    ),
    "NOISE": (
        "Construction work at {addr} starting before 7am with jackhammers",
        "Loud amplified music from the bar at {addr} after midnight",
        "Noise from the loading dock at {addr} all night, trucks idling",
        "Party noise at {addr} every weekend until 3am",
        "Generator running nonstop at the work site at {addr}",
    ),
    "ABANDONED_VEHICLE": (
        "Vehicle parked at {addr} has not moved in over a month, flat tires",
        "Car with expired plates abandoned in front of {addr}",
        "Damaged vehicle with broken windows left at {addr} for weeks",
        "Abandoned van at {addr}, no plates, covered in tickets",
    ),
    "TRAFFIC_SIGN": (
        "Stop sign knocked down at {addr}",
        "Street sign at {addr} bent and facing the wrong way",
        "No parking sign missing from the pole at {addr}",
        "Faded and damaged stop sign at {addr}, hard to see",
    ),
}

# How often the demo desk gets each service (busy potholes and lights, rare signs).
SHARES = {"POTHOLE": 14, "STREETLIGHT": 12, "LITTER_BIN": 8, "MISSED_PICKUP": 9, "FLOODING": 7, "GRAFFITI": 9,
          "TREE_DEBRIS": 7, "SIDEWALK_BLOCKED": 6, "NOISE": 10, "ABANDONED_VEHICLE": 5, "TRAFFIC_SIGN": 3}

DETAILS = ("", "", "", " Please send a crew.", " Reported before, still not fixed.", " Thank you.",
           " It is getting worse.", " Near the school entrance.")
# Contact details residents sometimes type into the description (fictional 555-01xx, example.com).
CONTACTS = (" Call me at 312-555-0163.", " Contact: neighbor.demo@example.com")
DAYS = 80


def _addresses(rng: random.Random, places: list[dict[str, Any]], n: int) -> list[str]:
    streets = sorted({s for p in places if p["kind"] == "intersection" for s in p.get("streets", [])})
    return [f"{rng.randrange(1, 40) * 100 + rng.randrange(0, 99)} {rng.choice(streets)}" for _ in range(n)]


def generate_history(seed: int = 0, n: int = 400, places: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Past requests of the demo city, oldest first.

    Args:
        seed: the random seed; the same seed gives the same requests.
        n: how many.
        places: the gazetteer (default: the bundled one), for street names and points.

    Returns:
        Dicts with ``service_code``, ``description``, ``lat``, ``lon``, ``address``,
        ``age_s`` (seconds before now it was filed), ``status`` and ``closed_after_s``.
    """
    from social311.demo.generate import jitter, load_places

    rng = random.Random(seed)
    places = places if places is not None else load_places()
    codes = list(SHARES)
    weights = [SHARES[c] for c in codes]
    out = []
    for address in _addresses(rng, places, n):
        code = rng.choices(codes, weights)[0]
        text = rng.choice(REQUESTS[code]).format(addr=address).rstrip(".") + "." + rng.choice(DETAILS)
        if rng.random() < 0.06:
            text += rng.choice(CONTACTS)
        place = rng.choice(places)
        lat, lon = jitter(rng, place["lat"], place["lon"], 150)
        age = rng.uniform(2 * 3600, DAYS * 86400)
        # Most requests older than two weeks were handled; recent ones are often still open.
        closed = rng.random() < (0.9 if age > 14 * 86400 else 0.4)
        if not closed:
            # Open requests carry only their address: a located one near a demo incident would be
            # linked to instead of filed (ticketing's link_radius_m), changing the demo's tickets.
            lat = lon = None
        out.append({"service_code": code, "description": text, "lat": lat, "lon": lon, "address": address,
                    "age_s": round(age), "status": "closed" if closed else "open",
                    "closed_after_s": round(min(age - 60, rng.uniform(3600, 10 * 86400))) if closed else None})
    return sorted(out, key=lambda r: -r["age_s"])


def seed_sandbox(server, seed: int = 0, n: int = 400, now: float | None = None) -> int:
    """Stage the demo history in a sandbox (``SandboxServer``) unless it holds requests already.

    Returns:
        How many requests were staged (0 when the sandbox was not empty).
    """
    if server.requests_filed() > 0:
        return 0  # a sandbox file kept from an earlier demo run has its history (and tickets)
    now = time.time() if now is None else now
    for r in generate_history(seed, n):
        at = now - r["age_s"]
        server.stage_request(r["service_code"], r["description"], at=at, status=r["status"],
                             updated_at=at + r["closed_after_s"] if r["closed_after_s"] else None,
                             lat=r["lat"], lon=r["lon"], address=r["address"])
    return n
