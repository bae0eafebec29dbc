"""A hand-checked scenario shared by unit and integration tests: two cohorts over four
hours, with the exact files the contract says they give (project 7, property `plan`,
hourly syncs). Expected rows were worked out by hand from the contract (the README's "Semantics" and
"Output"), not by the code."""

from __future__ import annotations

import json
from datetime import UTC, datetime

JAN5 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
MIN = 60_000
H = 60 * MIN


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(cohort: str, user: int, action: str, at: int, **props: object) -> bytes:
    """One event `at` ms after 2026-01-05T00:00Z."""
    return json.dumps(
        {
            "cohort_id": cohort,
            "amplitude_id": user,
            "user_id": f"u{user}",
            "action": action,
            "time": iso(JAN5 + at),
            "user_properties": props or None,
        }
    ).encode()


C1 = [
    event("c1", 1001, "enter", 10 * MIN, plan="pro"),
    event("c1", 1002, "enter", 20 * MIN, plan="free"),
    event("c1", 1003, "enter", 40 * MIN),
    event("c1", 1003, "exit", 50 * MIN),
    event("c1", 1002, "exit", 65 * MIN, plan="gone"),
    event("c1", 1001, "enter", 90 * MIN, plan="enterprise"),
    event("c1", 1004, "enter", 135 * MIN),
    event("c1", 1005, "enter", 4 * H + MIN),
]

C2 = [
    event("c2", 2001, "enter", 5 * MIN, plan="a,b"),
    event("c2", 2002, "enter", 30 * MIN, plan=True),
    event("c2", 2001, "exit", 70 * MIN),
    event("c2", 2003, "enter", 80 * MIN, plan={"k": [1, 2]}),
    event("c2", 2002, "exit", 150 * MIN),
    event("c2", 2004, "enter", 4 * H + 2 * MIN),
]

HEADER = "amplitudeID,userID,plan\n"

EXPECTED_C1 = {
    "01:00_entering": HEADER + "1001,u1001,pro\n1002,u1002,free\n",
    "01:00_exiting": HEADER,
    "01:00_existing": HEADER + "1001,u1001,pro\n1002,u1002,free\n",
    "02:00_entering": HEADER,
    "02:00_exiting": HEADER + "1002,u1002,gone\n",
    "02:00_existing": HEADER + "1001,u1001,enterprise\n",
    "03:00_entering": HEADER + "1004,u1004,\n",
    "03:00_exiting": HEADER,
    "03:00_existing": HEADER + "1001,u1001,enterprise\n1004,u1004,\n",
    "04:00_entering": HEADER,
    "04:00_exiting": HEADER,
    "04:00_existing": HEADER + "1001,u1001,enterprise\n1004,u1004,\n",
}

EXPECTED_C2 = {
    "01:00_entering": HEADER + '2001,u2001,"a,b"\n2002,u2002,true\n',
    "01:00_exiting": HEADER,
    "01:00_existing": HEADER + '2001,u2001,"a,b"\n2002,u2002,true\n',
    "02:00_entering": HEADER + '2003,u2003,"{""k"":[1,2]}"\n',
    "02:00_exiting": HEADER + '2001,u2001,"a,b"\n',
    "02:00_existing": HEADER + '2002,u2002,true\n2003,u2003,"{""k"":[1,2]}"\n',
    "03:00_entering": HEADER,
    "03:00_exiting": HEADER + "2002,u2002,true\n",
    "03:00_existing": HEADER + '2003,u2003,"{""k"":[1,2]}"\n',
    "04:00_entering": HEADER,
    "04:00_exiting": HEADER,
    "04:00_existing": HEADER + '2003,u2003,"{""k"":[1,2]}"\n',
}


def expected_csvs(
    path: str = "", cohorts: tuple[str, ...] = ("c1", "c2"), naming: str = "amplitude"
) -> dict[str, str]:
    """Key -> CSV text for the scenario, as written with `project_id = 7`."""
    tables = {"c1": EXPECTED_C1, "c2": EXPECTED_C2}
    prefix = f"{path}/" if path else ""
    files = {}
    for cohort in cohorts:
        for stem, text in tables[cohort].items():
            time, kind = stem.split("_")
            if naming == "no-colon":
                time = time.replace(":", "-")
            files[f"{prefix}7_{cohort}_2026-01-05T{time}_{kind}.csv"] = text
    return files
