"""What every benchmark module shares: the result row, timing, realistic test data.

A benchmark module `bench/bench_<name>.py` has `run(quick: bool) -> list[Row]`.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import TypedDict

from memcli.store import names
from memcli.store.core import builtin_relations
from memcli.store.schema import SINGLE_VALUED

ROW_FIELDS = ("name", "ours", "baseline", "unit", "ratio", "goal", "ok")


class Row(TypedDict):
    """One measured line. `ratio` is oriented so that higher is better for memcli
    (baseline time / our time for speed); the name says what it compares."""

    name: str
    ours: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    goal: str
    ok: bool | None  # None: no goal, or nothing to compare


def row(
    name: str,
    ours: float | None,
    baseline: float | None,
    unit: str,
    *,
    ratio: float | None = None,
    goal: str = "",
    ok: bool | None = None,
) -> Row:
    return Row(name=name, ours=ours, baseline=baseline, unit=unit, ratio=ratio, goal=goal, ok=ok)


def speed_ratio(ours: float | None, baseline: float | None) -> float | None:
    """baseline / ours for times (or latencies): above 1 means memcli is faster."""
    if ours is None or baseline is None or ours <= 0:
        return None
    return baseline / ours


def speed_row(
    name: str,
    ours: float | None,
    baseline: float | None,
    unit: str,
    min_ratio: float | None = None,
    goal: str | None = None,
) -> Row:
    """A row comparing two times: ratio = baseline / ours, ok when it reaches
    `min_ratio` (no goal when None)."""
    ratio = speed_ratio(ours, baseline)
    if min_ratio is None:
        return row(name, ours, baseline, unit, ratio=ratio)
    return row(
        name,
        ours,
        baseline,
        unit,
        ratio=ratio,
        goal=goal or f"ratio ≥ {min_ratio:g}",
        ok=None if ratio is None else ratio >= min_ratio,
    )


def skipped(name: str, reason: str) -> Row:
    return row(f"{name}: skipped ({reason})", None, None, "", goal="", ok=None)


# -- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one thing."""

    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def measure(
    fn: Callable[[], object], repeat: int = 5, setup: Callable[[], object] | None = None
) -> Timing:
    """Time `fn()` `repeat` times with `time.perf_counter`; `setup()` runs before each,
    untimed (to delete an output file, say)."""
    runs = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def run_command(
    args: Sequence[str], *, stdout: Path | None = None, env: dict | None = None
) -> None:
    """Run a program to completion, raising with its stderr when it fails."""
    if stdout is not None:
        with open(stdout, "wb") as handle:
            done = subprocess.run(args, stdout=handle, stderr=subprocess.PIPE, env=env)
    else:
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({done.returncode}): {message}")


def venv_script(name: str, module: str) -> list[str]:
    """The console script `name` beside this Python (the venv's), else `python -m module`."""
    script = Path(sys.executable).parent / name
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", module]


def sqlite3_shell() -> str | None:
    return shutil.which("sqlite3")


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    shell = sqlite3_shell()
    shell_version = None
    if shell:
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            shell_version = subprocess.run(
                [shell, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.split()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite_library": sqlite3.sqlite_version,
        "sqlite3_shell": shell_version,
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


# -- realistic triples --------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Names written compactly: "|"-separated when the text has a "|", else one word
    each, with "_" standing for a space inside a name."""
    parts = text.split("|") if "|" in text else text.split()
    return [part.replace("_", " ") for part in parts]


_GIVEN = _words(
    "John Mary James Anna Robert Elizabeth Michael Sarah David Laura Thomas Emma William "
    "Olivia Peter Grace Charles Alice George Helen Henry Clara Paul Julia Mark Rachel "
    "José María François Zoë Søren Ólafur Björk Łukasz Dvořák Jürgen Renée Chloé Ingrid "
    "Nikolai Ivana Ahmed Fatima Kwame Aiyana Priya Rahul Hiroshi Yuki Mei Wei Jae-won "
    "Siobhán Seán Małgorzata Ștefan Gökhan Þóra Ångström Noémie Inês João Dmitri Astrid "
    "Ravi Ngozi Chidi Tomás Lucía Matías Ximena Kofi Amara Eoin Niamh Agnieszka Bogdan"
)
_SURNAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Moore Martin "
    "Jackson White Harris Clark Lewis Walker Young King Wright Scott Green Baker Adams "
    "García Martínez Müller Schmidt Schröder Nørgaard Arnalds Guðmundsdóttir Kowalski "
    "Nowak Dvořáková Novák Horváth Nagy Kovačević Petrović Ivanov Смирнов Popescu "
    "Öztürk Yılmaz Nakamura Tanaka Kim Park Nguyễn Trần Singh Patel Okafor Mensah "
    "O'Brien O'Connor D'Angelo McAllister van_der_Berg de_la_Cruz Lefèvre Dubois Fontaine "
    "Rossi Bianchi Esposito Ferreira Gonçalves Andersson Lindqvist Virtanen Häkkinen"
)
_CJK_FAMILY = _words("王 李 張 劉 陳 楊 黃 趙 田中 佐藤 鈴木 高橋 渡辺 伊藤 山本 中村 김 이 박")
_CJK_GIVEN = _words("伟 芳 娜 秀英 敏 静 丽 强 太郎 花子 健一 美咲 翔 陽菜 蓮 민준 서연 지호")
_PLACES = _words(
    "São Paulo|Zürich|東京|München|Kraków|Reykjavík|Москва|القاهرة|Ciudad de México|"
    "Washington, D.C.|St. John's|Bogotá|Montréal|Québec City|Düsseldorf|Göteborg|Malmö|"
    "Århus|Łódź|Brno|Plzeň|İstanbul|Thessaloníki|Αθήνα|Kyiv|Tbilisi|Yerevan|Tel Aviv|"
    "Mumbai|Bengaluru|Chennai|Kolkata|Dhaka|Kathmandu|Hà Nội|Hồ Chí Minh City|Bangkok|"
    "Kuala Lumpur|Jakarta|Manila|서울|부산|大阪|京都|北京|上海|香港|台北|Sydney|Auckland|"
    "Wellington|Cape Town|Johannesburg|Lagos|Nairobi|Addis Ababa|Accra|Dakar|Casablanca|"
    "Lima|Santiago|Buenos Aires|Montevideo|La Paz|Quito|Caracas|Havana|San Juan|Toronto|"
    "Vancouver|Chicago|Los Angeles|New York City|Boston|Seattle|Miami|New Orleans|Dublin|"
    "Edinburgh|Cardiff|Belfast|Liverpool|Manchester|Lisbon|Porto|Sevilla|A Coruña|Bilbao|"
    "Marseille|Lyon|Nice|Genève|Lausanne|Bern|Wien|Salzburg|Praha|Budapest|Bucureşti|Sofia|"
    "Beograd|Zagreb|Ljubljana|Tallinn|Rīga|Vilnius|Helsinki|Oslo|Stockholm|København"
)
_COUNTRIES = _words(
    "United States|United Kingdom|France|Germany|Japan|China|India|Italy|Spain|Canada|"
    "Australia|Brazil|Russia|Mexico|Netherlands|Sweden|Norway|Denmark|Finland|Iceland|"
    "Poland|Czech Republic|Austria|Switzerland|Belgium|Ireland|Portugal|Greece|Turkey|"
    "Egypt|Nigeria|South Africa|Kenya|Argentina|Chile|Colombia|Peru|South Korea|Vietnam|"
    "Indonesia|Philippines|Thailand|New Zealand|Israel|Iran|Pakistan|Bangladesh|Ukraine|"
    "Côte d'Ivoire|Türkiye|Deutschland|España|Česko|日本|中国|한국"
)
_HEAD = _words(
    "English|French|German|Spanish|Japanese|Mandarin Chinese|Russian|Portuguese|Arabic|"
    "Hindi|rock music|pop music|jazz|film|album|single|human|association football|"
    "politician|actor|singer|novel|television series|video game|Democratic Party|"
    "Republican Party|Labour Party|Roman Catholic Church|Harvard University|"
    "University of Oxford|Columbia Records|Warner Bros.|Nintendo|Sony|BBC|NBC|"
    "Premier League|Bundesliga|National Football League|Academy Award for Best Picture|"
    "Grammy Award|Nobel Prize in Literature|World War II|World War I|European Union|"
    "United Nations|NATO|Ólafur Arnalds|Sigur Rós|Amélie|Les Misérables|Beyoncé"
)
_COMMON_RELATIONS = _words(
    "country|located in the administrative territorial entity|"
    "contains administrative territorial entity|publication date|has part|part of|"
    "country of citizenship|date of birth|instance of|inception|performer|place of birth|"
    "member of sports team|date of death|educated at|record label|located in or next to "
    "body of water|genre|cast member|employer|member of political party|spouse|"
    "notable work|place of death|child|father|author|director|developer|producer"
)
_SYLLABLES = _words(
    "ka lo mar vi sen dor ul bre thi an el ros tan mi ra ve no sha ki lu ber gen ta "
    "vor lin dal ost ha ry ze bo qu é ø å ü ñ ç al ri"
)
_MONTHS = _words(
    "January February March April May June July August September October November December"
)


def _word(rng: random.Random) -> str:
    text = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    return text[0].upper() + text[1:]


def _generated_name(rng: random.Random) -> str:
    """One plausible entity name: a person, place, organisation, work or date."""
    kind = rng.random()
    if kind < 0.30:
        given, family = rng.choice(_GIVEN), rng.choice(_SURNAMES)
        if rng.random() < 0.3:
            return f"{given} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {family}"
        if rng.random() < 0.3:
            return f"{given} {_word(rng)}"
        return f"{given} {family}"
    if kind < 0.36:
        return rng.choice(_CJK_FAMILY) + rng.choice(_CJK_GIVEN) + rng.choice(("", "", "子", "明"))
    if kind < 0.52:
        base = _word(rng)
        return rng.choice(
            (
                f"{base}",
                f"{base} River",
                f"Mount {base}",
                f"{base} County",
                f"{base}, {rng.choice(_COUNTRIES)}",
                f"Lake {base}",
                f"{base}ville",
                f"São {base}",
                f"{base}burg",
                f"Saint-{base}",
            )
        )
    if kind < 0.68:
        base = _word(rng)
        return rng.choice(
            (
                f"University of {base}",
                f"{base} University",
                f"{base} F.C.",
                f"{base} Records",
                f"{base} & Sons, Inc.",
                f"{base} Party",
                f"{base} Institute of Technology",
                f"{base} AG",
                f"{base} GmbH",
                f"{base} Airlines",
            )
        )
    if kind < 0.86:
        a, b = _word(rng), _word(rng)
        return rng.choice(
            (
                f"The {a} of {b}",
                f'"{a}" ({rng.randint(1950, 2024)} film)',
                f"{a} & {b}",
                f"Songs from {a}",
                f"{a}: A Novel",
                f"The {a} Sessions, Vol. {rng.randint(1, 9)}",
                f"{a} ({rng.randint(1960, 2024)} album)",
                f'{a} "{b}" Live',
            )
        )
    if kind < 0.95:
        return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1800, 2024)}"
    return str(rng.randint(1000, 2024))


def name_pool(size: int, seed: int) -> list[str]:
    """`size` entity names, distinct as memory matches them, most frequent first:
    countries, cities and common values, then generated names in random order."""
    rng = random.Random(seed)
    pool: list[str] = []
    seen: set[str] = set()

    def take(name: str) -> None:
        key = names.key(name)
        if key not in seen and names.name_problem(name) is None:
            seen.add(key)
            pool.append(name)

    head = [*_COUNTRIES, *_HEAD, *_PLACES]
    for name in head[: max(1, size // 2)]:
        take(name)
    attempts = 0
    while len(pool) < size:
        attempts += 1
        name = _generated_name(rng)
        if attempts > 50 * size:  # the generator ran dry: number the rest
            name = f"{name} {attempts}"
        take(name)
    return pool


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    return list(accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def relation_names() -> list[str]:
    """The 96 DocRED relation names, most frequent in DocRED first (roughly)."""
    all_names = list(builtin_relations().values())
    common = [r for r in _COMMON_RELATIONS if r in all_names]
    return common + [r for r in all_names if r not in common]


def generate_triples(n: int, seed: int) -> list[tuple[str, str, str]]:
    """n distinct (subject, relation, object) triples, deterministic per seed, shaped like
    extracted facts: entities from a Zipf-like pool of about n/10 names (subjects and
    objects skewed differently: a few countries and years are very common objects),
    relations from DocRED's 96, skewed the same way."""
    rng = random.Random(seed)
    pool = name_pool(max(10, n // 10), seed)
    subject_order = list(range(len(pool)))
    rng.shuffle(subject_order)
    relations = relation_names()
    subject_weights = _zipf_cumulative(len(pool), 0.6)
    object_weights = _zipf_cumulative(len(pool), 1.0)
    relation_weights = _zipf_cumulative(len(relations), 0.9)
    n_pool, n_rel = len(pool), len(relations)
    # A single-valued relation (`residence`, `date of birth`) gets one object per subject,
    # as a consistent memory holds it: a second one would be a conflict to import.
    single_names = {builtin_relations()[p] for p in SINGLE_VALUED}
    single = {i for i, name in enumerate(relations) if name in single_names}
    seen: set[int] = set()
    held: set[int] = set()
    triples: list[tuple[str, str, str]] = []
    while len(triples) < n:
        want = n - len(triples)
        draw = max(want + want // 10, 16)
        subjects = rng.choices(subject_order, cum_weights=subject_weights, k=draw)
        objects = rng.choices(range(n_pool), cum_weights=object_weights, k=draw)
        rels = rng.choices(range(n_rel), cum_weights=relation_weights, k=draw)
        for s, r, o in zip(subjects, rels, objects, strict=True):
            if s == o:
                continue
            identity = (s * n_rel + r) * n_pool + o
            if identity in seen:
                continue
            if r in single:
                if s * n_rel + r in held:
                    continue
                held.add(s * n_rel + r)
            seen.add(identity)
            triples.append((pool[s], relations[r], pool[o]))
            if len(triples) == n:
                break
    return triples


def generate_csv(path: str | Path, n: int, seed: int = 0) -> int:
    """Write n realistic triples to `path` as CSV with the header memcli and sqlite3
    read (`subject,relation,object`). Deterministic per seed; no duplicate rows."""
    triples = generate_triples(n, seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("subject", "relation", "object"))
        writer.writerows(triples)
    return len(triples)
