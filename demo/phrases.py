"""Templates for the demo's synthetic posts, written for this project (no real posts copied).

In a report template ``{at}`` becomes a location phrase ("at State and Madison", "near Union
Station") or a vague one ("on my block") when the post carries no named place.
"""

from __future__ import annotations

CITY_HANDLE = "DemoCity311"

# Issue kind -> resident wordings. First reports and follow-ups are mixed on purpose: several
# posts about one incident use different words for the same problem.
REPORTS: dict[str, tuple[str, ...]] = {
    "pothole": (
        "Huge pothole {at}, almost lost a tire",
        "There's a crater of a pothole {at}. Cars swerving into the bike lane to dodge it",
        "pothole {at} is getting deeper every day, someone is going to get hurt",
        "Just blew a tire on the pothole {at}. Fantastic.",
        "Still a massive hole in the road {at}. Can someone patch it please",
        "The road is completely broken up {at}, potholes everywhere",
    ),
    "streetlight": (
        "Streetlight out {at}, pitch dark walking home",
        "street light has been out for a week {at}",
        "All the lights are out {at}, whole stretch is dark at night",
        "Light pole {at} is flickering and then goes dark, feels unsafe",
        "can we get the street light fixed {at}? it's been dark for days",
    ),
    "garbage": (
        "Trash cans overflowing {at}, garbage all over the sidewalk",
        "Garbage wasn't picked up again {at}. Bins full since Monday",
        "Overflowing bins {at} and the rats are loving it",
        "missed pickup {at}, recycling carts still full and smelling",
        "The public trash can {at} is overflowing, trash blowing into the street",
    ),
    "flooding": (
        "Street is flooded {at}, the drain is completely blocked",
        "Huge puddle {at} after the rain, storm drain clogged with leaves",
        "Water pooling across the whole intersection {at}, can't cross without wading",
        "blocked drain {at} again, the corner floods every time it rains",
    ),
    "graffiti": (
        "Someone tagged the whole wall {at} with graffiti overnight",
        "Graffiti all over the bus shelter {at}",
        "new graffiti on the underpass {at}, needs painting over",
        "Spray paint tags on every mailbox {at}",
    ),
    "tree": (
        "Big tree branch down {at}, blocking half the street",
        "Fallen tree {at} after last night's storm, nobody can get through",
        "A whole tree came down {at} and it's resting on a parked car",
        "Tree limb hanging over the sidewalk {at}, looks ready to fall",
    ),
    "sidewalk": (
        "Sidewalk blocked {at} by construction fencing, no way through with a stroller",
        "Wheelchair users can't get past {at}, the sidewalk is blocked by debris",
        "Sidewalk is totally broken up {at}, tripped twice this week",
        "Scooters and a dumpster blocking the whole sidewalk {at}",
    ),
    "noise": (
        "Construction noise {at} started at 5am again, this can't be allowed",
        "Loud music blasting {at} every night past 2am",
        "Jackhammering {at} at midnight, is there a permit for this?",
        "Car alarm going off for an hour {at}, nobody is coming",
    ),
    "abandoned_vehicle": (
        "Abandoned car {at}, hasn't moved in weeks and the tires are flat",
        "There's a car with no plates just sitting {at} for a month",
        "Burned out car abandoned {at}, it's been there since last week",
        "Van with smashed windows left {at} for weeks, looks abandoned",
    ),
}

# Where the place is named in the text. {a}/{b}: the crossing streets; {L}: a landmark.
AT_INTERSECTION = ("at {a} and {b}", "on the corner of {a} & {b}", "near {a} & {b}", "at {a}/{b}",
                   "on {a} by {b}", "at the corner of {a} and {b}")
AT_LANDMARK = ("near {L}", "outside {L}", "right by {L}", "at {L}")
AT_NOWHERE = ("on my block", "outside my building", "here", "on our street", "by my place")

OPENERS = ("", "", "", "Ugh. ", "Heads up: ", "Seriously? ", "PSA: ", "Again: ")
CLOSERS = ("", "", "", " Please fix!", " #fixit", " Thanks in advance.", " 😡", " Not the first time.")

# PII a resident might add; the numbers are in the 555-01xx fictional range, example.com is reserved.
PII_SUFFIXES = (" Call me at (312) 555-0147 if you need details.",
                " Email me at resident.demo@example.com, I can send photos.")

# About half the demo is not about public services, some of it on purpose close to it.
NOISE: tuple[str, ...] = (
    "Best deep dish in town, fight me",
    "Anyone else stuck on the Red Line right now?",
    "Tacos at {a} and {b} are unreal tonight",
    "That was a lights-out performance by the home team tonight!",
    "Lake looks amazing this morning",
    "Who's going to the concert at {L} this weekend?",
    "My inbox is one giant pothole of despair",
    "Breaking: city council to vote on new budget next week",
    "Can't believe we lost in overtime again",
    "Coffee shop near {a} & {b} has the best croissants",
    "Running along the lakefront trail, perfect weather",
    "Traffic on the highway is brutal this morning as usual",
    "New brunch spot by {L} is worth the wait",
    "Thinking about adopting a dog, any shelter recommendations?",
    "The architecture boat tour is a must if you're visiting",
    "Why is everyone talking about the game, I just want pizza",
    "lol my cat just knocked my phone into the sink",
    "Local news: the marathon will close some streets on Sunday",
    "Thanks @" + CITY_HANDLE + " for the great summer festival!",
    "Happy Friday everyone, have a great weekend",
    "Street fair at {a} and {b} was a blast",
    "Farmers market by {L} has the first strawberries of the season",
    "Is it just me or is it freezing for May?",
    "Rooftop bar views tonight are incredible",
    "Does anyone know if the library is open on Sundays?",
    "Garbage time in the fourth quarter but we still covered the spread",
)

HANDLE_WORDS = ("windy", "lakeside", "loop", "pilsen", "bridgeport", "southloop", "westloop", "riverwalk",
                "elevated", "redline", "bluelines", "grid", "prairie", "maxwell", "halsted", "bucktown")
HANDLE_NOUNS = ("walker", "rider", "cyclist", "neighbor", "mom", "dad", "runner", "commuter", "foodie",
                "fan", "local", "resident")
FIRST_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Casey", "Morgan", "Riley", "Jamie", "Avery", "Quinn",
               "Drew", "Robin", "Kai", "Noor", "Mateo", "Priya", "Tomás", "Mei", "Kofi", "Lena")
